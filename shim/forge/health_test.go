package forge

import (
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// clock is a settable time for Health.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestHealth() (*Health, *clock) {
	c := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	h := NewHealth(Forge, Nomad)
	h.now = c.now
	return h, c
}

// TestHealthSince: "unreachable since" is when the outage began, however
// its errors change, and a recovery ends it.
func TestHealthSince(t *testing.T) {
	h, c := newTestHealth()
	h.Report(Forge, nil)
	c.t = c.t.Add(time.Minute)
	h.Report(Forge, errors.New("connection refused"))
	c.t = c.t.Add(time.Minute)
	h.Report(Forge, errors.New("502 Bad Gateway"))
	ok, why := h.Healthy()
	if want := "forge unreachable since 2026-01-02T03:05:05Z: 502 Bad Gateway"; ok || why != want {
		t.Fatalf("Healthy() = %v %q, want false %q", ok, why, want)
	}
	h.Report(Forge, nil)
	c.t = c.t.Add(time.Minute)
	h.Report(Forge, errors.New("timeout"))
	if _, why := h.Healthy(); !strings.Contains(why, "since 2026-01-02T03:07:05Z") {
		t.Fatalf("a new outage kept the old one's start: %q", why)
	}
}

func TestHealthUp(t *testing.T) {
	h, _ := newTestHealth()
	h.Report(Nomad, errors.New("no cluster leader"))
	if !h.Up(Forge) || h.Up(Nomad) || h.Up() || h.Up(Forge, Nomad) {
		t.Fatalf("Up: forge %v, nomad %v, all %v", h.Up(Forge), h.Up(Nomad), h.Up())
	}
}

func TestHealthz(t *testing.T) {
	tests := []struct {
		name         string
		forge, nomad error
		code         int
		body         string
	}{
		{"all up", nil, nil, 200, "ok\n"},
		{"forge down", errors.New("connection refused"), nil, 503,
			"unhealthy\nforge unreachable since 2026-01-02T03:04:05Z: connection refused\n"},
		{"both down", errors.New("connection refused"), errors.New("no cluster leader"), 503,
			"unhealthy\nforge unreachable since 2026-01-02T03:04:05Z: connection refused\n" +
				"nomad unreachable since 2026-01-02T03:04:05Z: no cluster leader\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, _ := newTestHealth()
			h.Report(Nomad, tt.nomad)
			h.Report(Forge, tt.forge)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/healthz", nil))
			body, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.code || string(body) != tt.body {
				t.Fatalf("/healthz = %d %q, want %d %q", rec.Code, body, tt.code, tt.body)
			}
		})
	}
}

// TestHealthUndeclared: a dependency NewHealth was not given is tracked
// from its first report.
func TestHealthUndeclared(t *testing.T) {
	h, _ := newTestHealth()
	h.Report("vault", errors.New("sealed"))
	if ok, why := h.Healthy(); ok || !strings.HasPrefix(why, "vault unreachable") {
		t.Fatalf("Healthy() = %v %q", ok, why)
	}
}
