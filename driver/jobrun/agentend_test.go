package jobrun

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/internal/tailbuf"
)

func TestAgentEnds(t *testing.T) {
	ended := errAgentEnded{status: 127, stderr: "not found"}
	broken := errors.New("connection reset")
	tests := []struct {
		name    string
		offsets []int64
		errs    []error
		trips   bool
	}{
		{"three ends at one offset", []int64{10, 10, 10}, []error{ended, ended, ended}, true},
		{"the stream moved on", []int64{10, 10, 20}, []error{ended, ended, ended}, false},
		{"a broken connection in between", []int64{10, 10, 10}, []error{ended, broken, ended}, false},
		{"broken connections only", []int64{10, 10, 10, 10}, []error{broken, broken, broken, broken}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var a agentEnds
			var err error
			for i := range tt.offsets {
				err = a.check(tt.offsets[i], tt.errs[i])
			}
			if tripped := err != nil; tripped != tt.trips {
				t.Fatalf("tripped %v (%v), want %v", tripped, err, tt.trips)
			}
		})
	}
}

func TestExitReader(t *testing.T) {
	tests := []struct {
		name string
		wait error
		want string // the error's text; empty for io.EOF
	}{
		{"exited", nil, `solstice-guest follow exited with status 0 saying "not the agent"`},
		{"connection lost", errors.New("wait: remote command exited without exit status"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stderr := tailbuf.New(512)
			io.WriteString(stderr, strings.Repeat("x", 1000)+"\nnot the agent\n")
			r := exitReader{Reader: strings.NewReader(""), wait: func() error { return tt.wait }, stderr: stderr.String}
			_, err := r.Read(make([]byte, 10))
			if tt.want == "" {
				if !errors.Is(err, io.EOF) {
					t.Fatalf("error %v, want EOF", err)
				}
				return
			}
			if err == nil || !strings.HasSuffix(err.Error(), "not the agent\"") {
				t.Fatalf("error %v, want one ending like %q", err, tt.want)
			}
			if len(stderr.String()) > 512 {
				t.Fatalf("stderr kept %d bytes", len(stderr.String()))
			}
		})
	}
}

// A job that replaced the agent's binary: every follow ends at once. The
// job fails with why instead of resuming until its deadline.
func TestReplacedAgentEndsTheJob(t *testing.T) {
	r, p := testRunner(t, &endless{})
	opens := 0
	r.open = func(context.Context, int64) (io.ReadCloser, error) {
		opens++
		first := ""
		if opens == 1 {
			ev := contract.Event{Seq: 1, Type: contract.TypeJobStarted, Steps: 1}
			first = string(contract.MarshalEvent(&ev))
		}
		return io.NopCloser(exitReader{Reader: strings.NewReader(first), wait: func() error { return nil },
			stderr: func() string { return "" }}), nil
	}
	code, err := r.Follow(t.Context(), nil)
	want := "the guest agent stopped sending the job's events: its follow ended 3 times in a row without the job's end"
	if code != contract.ExitInfrastructure || err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("code %d, error %v", code, err)
	}
	if opens != maxAgentEnds {
		t.Fatalf("%d opens, want %d", opens, maxAgentEnds)
	}
	if ev, _ := lastEvent(t, p); ev.Type != contract.TypeInfraError || !strings.Contains(ev.Message, want) {
		t.Fatalf("last event %+v", ev)
	}
}
