package guestssh

import (
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Stream returns as soon as the command prints, with its whole stdout to
// read from the first byte and its exit to wait for; a command that ends
// first says how, as Output does.
func TestStream(t *testing.T) {
	login, _ := newKey(t, "login")
	host, hostSigner := newKey(t, "host")
	srv := newSSHD(t, login, hostSigner)
	release := make(chan struct{})
	tests := []struct {
		name    string
		exec    func(stdout, stderr io.Writer) uint32
		wantOut string
		wantErr string
		code    int // the *ExitError's status, when there is one
		exit    int // the stream's exit status
	}{
		{name: "prints, then goes on", exec: func(stdout, _ io.Writer) uint32 {
			io.WriteString(stdout, "first\n")
			<-release // the stream is handed over before the command ends
			io.WriteString(stdout, "second\n")
			return 3
		}, wantOut: "first\nsecond\n", exit: 3},
		{name: "fails before printing", exec: func(_, stderr io.Writer) uint32 {
			io.WriteString(stderr, "no agent disk")
			return 91
		}, wantErr: `exited with 91: no agent disk`, code: 91},
		{name: "ends without printing", exec: func(_, _ io.Writer) uint32 { return 0 }, wantErr: "exited without printing anything"},
		{name: "stays silent", exec: func(_, _ io.Writer) uint32 { time.Sleep(5 * time.Second); return 0 }, wantErr: "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.exec = func(_ string, stdout, stderr io.Writer) uint32 { return tt.exec(stdout, stderr) }
			ctx := testCtx(t, 30*time.Second)
			c, err := Dial(ctx, Target{Addr: srv.addr, User: "solstice", PrivatePEM: login.PrivatePEM, HostKey: host.Public})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			if tt.name == "stays silent" {
				ctx = testCtx(t, 500*time.Millisecond)
			}
			s, err := c.Stream(ctx, "start && follow", strings.NewReader("{}"))
			if tt.wantErr != "" {
				var ee *ExitError
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || (tt.code != 0 && (!errors.As(err, &ee) || ee.Code != tt.code)) {
					t.Fatalf("Stream = %v, want an error with %q (status %d)", err, tt.wantErr, tt.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			close(release)
			out, _ := io.ReadAll(s)
			var exit *ssh.ExitError
			if string(out) != tt.wantOut || !errors.As(s.Wait(), &exit) || exit.ExitStatus() != tt.exit {
				t.Errorf("stream %q, exit %v: want %q and status %d", out, s.Wait(), tt.wantOut, tt.exit)
			}
		})
	}
}
