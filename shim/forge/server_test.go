package forge

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func fetch(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return resp.StatusCode, string(body)
}

// TestServer serves a private registry and the health, and stops on
// Close.
func TestServer(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "solstice_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(2)
	h := NewHealth(Forge, Nomad)
	srv, err := Listen("127.0.0.1:0", Handler(reg, h))
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr().String()
	if code, body := fetch(t, "GET", base+"/metrics"); code != 200 || !strings.Contains(body, "solstice_test_total 2\n") || strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics = %d, want our counter and nothing of the global registry:\n%s", code, body)
	}
	if code, body := fetch(t, "GET", base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q", code, body)
	}
	h.Report(Nomad, errors.New("no cluster leader"))
	if code, body := fetch(t, "GET", base+"/healthz"); code != 503 || !strings.Contains(body, "nomad unreachable since") {
		t.Errorf("/healthz with Nomad down = %d %q", code, body)
	}
	if code, _ := fetch(t, "POST", base+"/metrics"); code != http.StatusMethodNotAllowed {
		t.Errorf("POST /metrics = %d", code)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := http.Get(base + "/healthz"); err == nil {
		t.Error("still serving after Close")
	}
}

func TestListenFails(t *testing.T) {
	if _, err := Listen("256.0.0.1:0", http.NotFoundHandler()); err == nil || !strings.Contains(err.Error(), "/metrics") {
		t.Fatalf("Listen on a bad address: %v", err)
	}
}
