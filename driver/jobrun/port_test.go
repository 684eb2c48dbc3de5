package jobrun

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/driver/agentport"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/internal/contract"
)

// TestLaunchOverThePort: a clone's job starts with one start frame and no
// SSH at all, and its events come home from the port into events.jsonl,
// byte for byte, until the job's end.
func TestLaunchOverThePort(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	secretsFile := filepath.Join(dir, "secrets.json")
	os.WriteFile(planFile, []byte(`{"version":1}`), 0o600)
	os.WriteFile(secretsFile, []byte(`{"TOKEN":"s3cret"}`), 0o600)
	events := "{\"seq\":1,\"type\":\"job_started\"}\n{\"seq\":2,\"type\":\"log\",\"step\":0,\"line\":\"hi\"}\n{\"seq\":3,\"type\":\"job_finished\",\"conclusion\":\"success\"}\n"

	ours, guest := net.Pipe()
	defer guest.Close()
	started := make(chan contract.Start, 1)
	go func() {
		r := bufio.NewReader(guest)
		kind, payload, err := contract.ReadFrame(r)
		var s contract.Start
		if err != nil || kind != contract.FrameStart || json.Unmarshal(payload, &s) != nil {
			guest.Close()
			return
		}
		started <- s
		// Frame boundaries fall anywhere in the stream, lines included.
		for _, chunk := range []string{events[:10], events[10:50], events[50:]} {
			contract.WriteFrame(guest, contract.FrameData, []byte(chunk))
		}
		contract.WriteJSONFrame(guest, contract.FrameExit, contract.Exit{})
	}()
	var out bytes.Buffer
	r := &Runner{
		Log: hclog.NewNullLogger(), Events: filepath.Join(dir, "events.jsonl"), Out: &out,
		SSH: func(context.Context) (*guestssh.Client, error) { return nil, errors.New("no SSH for a clone's start") },
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	shipped, err := r.Launch(ctx, Files{Plan: planFile, Secrets: secretsFile, Port: agentport.New(ours), AgentInPlace: true})
	if err != nil {
		t.Fatal(err)
	}
	if shipped != onPort {
		t.Errorf("shipped %q", shipped)
	}
	s := <-started
	if string(s.Plan) != `{"version":1}` || string(s.Secrets) != `{"TOKEN":"s3cret"}` {
		t.Errorf("the agent got %+v", s)
	}
	code, err := r.Follow(ctx, nil)
	if err != nil || code != contract.ExitSuccess {
		t.Fatalf("follow: %d, %v", code, err)
	}
	got, _ := os.ReadFile(r.Events)
	if string(got) != events {
		t.Errorf("events file:\n%s\nwant:\n%s", got, events)
	}
}

// TestLaunchOverThePortFailing: an agent that cannot start the job says
// why, and the launch fails with its words.
func TestLaunchOverThePortFailing(t *testing.T) {
	dir := t.TempDir()
	planFile := filepath.Join(dir, "plan.json")
	os.WriteFile(planFile, []byte(`{}`), 0o600)
	ours, guest := net.Pipe()
	defer guest.Close()
	go func() {
		contract.ReadFrame(bufio.NewReader(guest))
		contract.WriteJSONFrame(guest, contract.FrameExit, contract.Exit{Code: 3, Stderr: "solstice-guest: plan: version: missing"})
	}()
	r := &Runner{Log: hclog.NewNullLogger(), Events: filepath.Join(dir, "events.jsonl"), Out: &bytes.Buffer{}}
	_, err := r.Launch(context.Background(), Files{Plan: planFile, Port: agentport.New(ours), AgentInPlace: true})
	var ee *agentport.ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || ee.Stderr != "solstice-guest: plan: version: missing" {
		t.Fatalf("got %v", err)
	}
}
