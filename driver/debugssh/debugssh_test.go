package debugssh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
)

const aliceKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3k5DTGmXc0f0Yk3c8s8kqG3tJb0x6jvI1i0JwL0XyZ alice@laptop"

// shellGuest runs the session's commands with the real /bin/sh on this
// host, with Dir and HOME moved into a temporary directory: the guest side
// of a session is shell, so the shell is what is tested.
type shellGuest struct {
	root, home string
	answer     func() []byte // replaces the status answer when set
}

func newShellGuest(t *testing.T) *shellGuest {
	tmp := t.TempDir()
	g := &shellGuest{root: filepath.Join(tmp, "guest"), home: filepath.Join(tmp, "home")}
	for _, d := range []string{g.root, g.home, filepath.Join(tmp, "work", "repo")} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	return g
}

func (g *shellGuest) rewrite(s string) string { return strings.ReplaceAll(s, Dir, g.root+"/debug") }

func (g *shellGuest) Run(ctx context.Context, cmd string, stdin io.Reader, max int) ([]byte, error) {
	if cmd == statusCommand && g.answer != nil {
		return g.answer(), nil
	}
	c := exec.CommandContext(ctx, "/bin/sh", "-c", g.rewrite(cmd))
	c.Env = []string{"HOME=" + g.home, "PATH=/usr/bin:/bin"}
	if stdin != nil {
		in, err := io.ReadAll(stdin)
		if err != nil {
			return nil, err
		}
		c.Stdin = strings.NewReader(g.rewrite(string(in)))
	}
	out, err := c.Output()
	if len(out) > max {
		return nil, errors.New("over the bound")
	}
	return out, err
}

// login runs the forced command as sshd would for a debug login.
func (g *shellGuest) login(t *testing.T, command string) string {
	t.Helper()
	c := exec.Command(filepath.Join(g.root, "debug", "shell"))
	c.Env = []string{"HOME=" + g.home, "PATH=/usr/bin:/bin", "SHELL=/bin/sh", "SSH_ORIGINAL_COMMAND=" + command}
	out, err := c.Output()
	if err != nil {
		t.Fatalf("debug login: %v", err)
	}
	return string(out)
}

type fakeForward struct {
	mu           sync.Mutex
	opened, shut int
	err          error
}

func (f *fakeForward) Open(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opened++
	return f.err
}

func (f *fakeForward) Close(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.shut++
	return nil
}

type recorder struct {
	mu     sync.Mutex
	events []contract.Event
	opened chan struct{}
}

func (r *recorder) emit(ev contract.Event) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
	if ev.Type == contract.TypeDebugSession {
		close(r.opened)
	}
	return nil
}

func (r *recorder) types() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var ts []string
	for _, ev := range r.events {
		ts = append(ts, ev.Type)
	}
	return ts
}

func newSession(g Guest, fwd Forward, rec *recorder, workDir string, ttl time.Duration) *Session {
	return &Session{
		Request: &contract.DebugSSH{User: "alice", Keys: []string{aliceKey}},
		Host:    "ci.example.org", Port: 31022, User: "solstice", WorkDir: workDir,
		TTL: ttl, Poll: 50 * time.Millisecond,
		Guest: g, Forward: fwd, Emit: rec.emit, Log: hclog.NewNullLogger(),
	}
}

func TestSessionEndsWhenTheUserLogsOut(t *testing.T) {
	g := newShellGuest(t)
	fwd := &fakeForward{}
	rec := &recorder{opened: make(chan struct{})}
	work := filepath.Join(filepath.Dir(g.root), "work")
	s := newSession(g, fwd, rec, work, time.Minute)
	done := make(chan string, 1)
	go func() {
		reason, err := s.Run(context.Background())
		if err != nil {
			t.Errorf("run: %v", err)
		}
		done <- reason
	}()
	<-rec.opened
	keys, err := os.ReadFile(filepath.Join(g.home, ".ssh", "authorized_keys"))
	if err != nil {
		t.Fatal(err)
	}
	if want := g.rewrite(keyOptions) + aliceKey + "\n"; string(keys) != want {
		t.Fatalf("authorized_keys:\n%s\nwant:\n%s", keys, want)
	}
	if pwd := strings.TrimSpace(g.login(t, "pwd")); pwd != filepath.Join(work, "repo") {
		t.Fatalf("the session starts in %q, want the workspace %q", pwd, filepath.Join(work, "repo"))
	}
	select {
	case reason := <-done:
		if reason != EndLoggedOut {
			t.Fatalf("ended because %q, want %q", reason, EndLoggedOut)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the session outlived the logout")
	}
	if got := strings.Join(rec.types(), ","); got != "debug_session,debug_ended" {
		t.Fatalf("events %s", got)
	}
	d := rec.events[0].Debug
	if d.Command() != "ssh -p 31022 solstice@ci.example.org" || !strings.Contains(rec.events[0].Message, "log out to end it") {
		t.Fatalf("announcement %q (%s)", rec.events[0].Message, d.Command())
	}
	if fwd.opened != 1 || fwd.shut != 1 {
		t.Fatalf("port opened %d and closed %d times, want once each", fwd.opened, fwd.shut)
	}
}

func TestSessionEnds(t *testing.T) {
	tests := []struct {
		name     string
		ttl      time.Duration
		cancel   bool
		answer   string
		fwdErr   error
		want     string
		wantErr  string
		wantMsg  string
		wantOpen bool
	}{
		{name: "expiry", ttl: 300 * time.Millisecond, want: EndExpired, wantMsg: "Debug session ended: the session expired.", wantOpen: true},
		{name: "stopped", ttl: time.Minute, cancel: true, want: EndStopped, wantMsg: "Debug session ended: the job was stopped.", wantOpen: true},
		{name: "logged in still", ttl: 300 * time.Millisecond, answer: "seen 1\n", want: EndExpired, wantOpen: true},
		{name: "hostile status", ttl: time.Minute, answer: "seen 1; rm -rf /\n", wantErr: "unexpected login status", wantMsg: "No debug session: ask the guest", wantOpen: true},
		{name: "no port", ttl: time.Minute, fwdErr: errors.New("address in use"), wantErr: "address in use", wantMsg: "No debug session: open the debug session: forward port 31022"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := newShellGuest(t)
			if tt.answer != "" {
				g.answer = func() []byte { return []byte(tt.answer) }
			}
			fwd := &fakeForward{err: tt.fwdErr}
			rec := &recorder{opened: make(chan struct{})}
			s := newSession(g, fwd, rec, "/nonexistent", tt.ttl)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancel {
				go func() { <-rec.opened; cancel() }()
			}
			reason, err := s.Run(ctx)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || reason != tt.want {
				t.Fatalf("ended (%q, %v), want %q", reason, err, tt.want)
			}
			last := rec.events[len(rec.events)-1]
			if last.Type != contract.TypeDebugEnded || !strings.HasPrefix(last.Message, tt.wantMsg) {
				t.Fatalf("last event %s %q, want debug_ended %q", last.Type, last.Message, tt.wantMsg)
			}
			if tt.wantOpen && fwd.shut != 1 {
				t.Fatalf("port closed %d times, want once", fwd.shut)
			}
		})
	}
}

func TestParseStatus(t *testing.T) {
	tests := []struct {
		in      string
		want    loginStatus
		wantErr bool
	}{
		{"seen 0\n", loginStatus{seen: true}, false},
		{"none 0\n", loginStatus{}, false},
		{"seen 2", loginStatus{seen: true, live: 2}, false},
		{"seen -1", loginStatus{}, true},
		{"seen", loginStatus{}, true},
		{"maybe 1", loginStatus{}, true},
		{"seen 1 extra", loginStatus{}, true},
	}
	for _, tt := range tests {
		got, err := parseStatus([]byte(tt.in))
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseStatus(%q) = %+v, %v; want %+v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestLimitBuffer(t *testing.T) {
	l := &limitBuffer{max: 8}
	if _, err := l.Write([]byte("seen 0\n")); err != nil || l.over {
		t.Fatalf("a short answer was refused: %v", err)
	}
	if _, err := l.Write([]byte("flood")); err == nil || !l.over {
		t.Fatal("an answer over the bound was taken")
	}
	if !bytes.Equal(l.b, []byte("seen 0\n")) {
		t.Fatalf("kept %q", l.b)
	}
}
