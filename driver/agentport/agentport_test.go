package agentport

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// agent plays the guest's side of the port: it reads the driver's frames
// and answers with the frames it is given, raw.
func agent(t *testing.T, answer func(kind string, payload []byte, w io.Writer)) *Conn {
	t.Helper()
	ours, theirs := net.Pipe()
	t.Cleanup(func() { ours.Close(); theirs.Close() })
	go func() {
		r := bufio.NewReader(theirs)
		for {
			kind, payload, err := contract.ReadFrame(r)
			if err != nil {
				return
			}
			answer(kind, payload, theirs)
		}
	}()
	return New(ours)
}

func identity() contract.Identity {
	return contract.Identity{UnixNano: 1, Seed: make([]byte, 32), MachineID: strings.Repeat("0", 32), Hostname: "h", User: "u",
		AuthorizedKey: "ssh-ed25519 A", HostKeyPEM: "-----BEGIN OPENSSH PRIVATE KEY-----", HostKeyPub: "ssh-ed25519 B"}
}

func TestIdentify(t *testing.T) {
	cases := []struct {
		name   string
		answer string
		want   string // "" for success
	}{
		{"ok", "ok 0\n", ""},
		{"the agent's error", "error 9\nno user u", "could not apply the identity: no user u"},
		{"a frame out of turn", "data 1\nx", "answered the identity with a data frame"},
		{"garbage", "HTTP/1.1 200 OK\r\n", "bad frame"},
		{"an oversized error", "error 99999\n", "over its 4096-byte limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got contract.Identity
			c := agent(t, func(kind string, payload []byte, w io.Writer) {
				if kind == contract.FrameIdentity {
					json.Unmarshal(payload, &got)
				}
				io.WriteString(w, tc.answer)
			})
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := c.Identify(ctx, identity())
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got.Hostname != "h" || len(got.Seed) != 32 {
					t.Errorf("the agent got %+v", got)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestIdentifyGivesUpWithItsContext(t *testing.T) {
	c := agent(t, func(string, []byte, io.Writer) {}) // never answers
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if err := c.Identify(ctx, identity()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the deadline", err)
	}
}

func TestStartStreamsTheEventsUntilTheExit(t *testing.T) {
	var got contract.Start
	c := agent(t, func(kind string, payload []byte, w io.Writer) {
		json.Unmarshal(payload, &got)
		contract.WriteFrame(w, contract.FrameData, []byte("{\"a\":1}\n{\"b\""))
		contract.WriteFrame(w, contract.FrameData, []byte(":2}\n"))
		contract.WriteJSONFrame(w, contract.FrameExit, contract.Exit{Code: 3, Stderr: "follow: the agent is gone"})
	})
	s, err := c.Start(context.Background(), []byte("plan"), []byte(`{"S":"v"}`))
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Plan) != "plan" || string(got.Secrets) != `{"S":"v"}` {
		t.Errorf("the agent got %+v", got)
	}
	events, err := io.ReadAll(s)
	if err != nil || string(events) != "{\"a\":1}\n{\"b\":2}\n" {
		t.Fatalf("read %q, %v", events, err)
	}
	var ee *ExitError
	if err := s.Wait(); !errors.As(err, &ee) || ee.ExitStatus() != 3 || s.Stderr() != "follow: the agent is gone" {
		t.Fatalf("wait: %v, stderr %q", err, s.Stderr())
	}
}

func TestStartThatFailsSaysWhy(t *testing.T) {
	c := agent(t, func(kind string, payload []byte, w io.Writer) {
		contract.WriteJSONFrame(w, contract.FrameExit, contract.Exit{Code: 3, Stderr: "solstice-guest: plan: job.id: missing"})
	})
	_, err := c.Start(context.Background(), []byte("plan"), []byte("{}"))
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Code != 3 || !strings.Contains(err.Error(), "job.id: missing") {
		t.Fatalf("got %v", err)
	}
}

func TestStreamRefusesWhatIsNotAnEvent(t *testing.T) {
	cases := []struct{ name, after, want string }{
		{"an identity frame", "ok 0\n", "a ok frame in the event stream"},
		{"a bad exit", "exit 2\n{x", "exit frame"},
		{"the port closed between frames", "", "unexpected EOF"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := agent(t, func(kind string, payload []byte, w io.Writer) {
				contract.WriteFrame(w, contract.FrameData, []byte("{}\n"))
				io.WriteString(w, tc.after)
				w.(io.Closer).Close()
			})
			s, err := c.Start(context.Background(), nil, []byte("{}"))
			if err != nil {
				t.Fatal(err)
			}
			b, err := io.ReadAll(s)
			if string(b) != "{}\n" || err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("read %q, %v; want an error saying %q", b, err, tc.want)
			}
		})
	}
}

func TestPairConnectsItsEnds(t *testing.T) {
	qemuEnd, c, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := net.FileConn(qemuEnd)
	qemuEnd.Close()
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	go io.WriteString(other, "ok 0\n")
	if err := c.Identify(context.Background(), identity()); err != nil {
		t.Fatal(err)
	}
}
