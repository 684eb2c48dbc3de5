package guestssh

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshd is an in-process SSH server standing in for a guest's sshd.
type sshd struct {
	addr     string
	accepted atomic.Int32 // TCP connections
	authed   atomic.Int32 // public keys offered to it: the client got past the host key
	// exec, when set, runs a session's command: it writes the output
	// and returns the exit status. Without it sessions are refused.
	exec func(cmd string, stdout, stderr io.Writer) uint32
}

// newSSHD serves with the given host keys and accepts the login key.
func newSSHD(t *testing.T, login Key, hostKeys ...ssh.Signer) *sshd {
	t.Helper()
	s := &sshd{}
	cfg := &ssh.ServerConfig{PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
		s.authed.Add(1)
		if bytes.Equal(k.Marshal(), login.Public) {
			return &ssh.Permissions{}, nil
		}
		return nil, errors.New("unknown key")
	}}
	for _, k := range hostKeys {
		cfg.AddHostKey(k)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s.addr = l.Addr().String()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			s.accepted.Add(1)
			go s.serve(c, cfg)
		}
	}()
	return s
}

func (s *sshd) serve(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	sc, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if s.exec == nil || nc.ChannelType() != "session" {
			nc.Reject(ssh.Prohibited, "no sessions here")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go s.session(ch, creqs)
	}
}

// session answers one exec request, then exits with the command's status.
func (s *sshd) session(ch ssh.Channel, reqs <-chan *ssh.Request) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil)
			continue
		}
		var msg struct{ Command string }
		ssh.Unmarshal(req.Payload, &msg)
		req.Reply(true, nil)
		status := s.exec(msg.Command, ch, ch.Stderr())
		ch.SendRequest("exit-status", false, ssh.Marshal(struct{ Status uint32 }{status}))
		return
	}
}

func newKey(t *testing.T, comment string) (Key, ssh.Signer) {
	t.Helper()
	k, err := NewKey(comment)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(k.PrivatePEM)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(signer.PublicKey().Marshal(), k.Public) {
		t.Fatal("Key.Public is not the private key's public half")
	}
	return k, signer
}

func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func TestDialAcceptsThePinnedHostKey(t *testing.T) {
	login, _ := newKey(t, "login")
	host, hostSigner := newKey(t, "host")
	// The guest also has an ECDSA key; the client must ask for the pinned
	// ed25519 one, not whichever it prefers.
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecSigner, err := ssh.NewSignerFromKey(ec)
	if err != nil {
		t.Fatal(err)
	}
	srv := newSSHD(t, login, ecSigner, hostSigner)
	c, err := Dial(testCtx(t, 10*time.Second), Target{Addr: srv.addr, User: "solstice", PrivatePEM: login.PrivatePEM, HostKey: host.Public})
	if err != nil {
		t.Fatalf("Dial with the right host key: %v", err)
	}
	c.Close()
}

// TestDialRefusesAWrongHostKey: a server with another host key (something
// else that answers on the forwarded port) is refused during key exchange,
// before the client offers its user or key, from the very first login.
func TestDialRefusesAWrongHostKey(t *testing.T) {
	login, _ := newKey(t, "login")
	pinnedKey, _ := newKey(t, "the guest's")
	_, impostor := newKey(t, "impostor")
	srv := newSSHD(t, login, impostor)
	target := Target{Addr: srv.addr, User: "solstice", PrivatePEM: login.PrivatePEM, HostKey: pinnedKey.Public}

	_, err := Dial(testCtx(t, 10*time.Second), target)
	if !errors.Is(err, ErrHostKeyMismatch) {
		t.Fatalf("Dial = %v, want %v", err, ErrHostKeyMismatch)
	}
	want := "host key mismatch: the server's key is " + ssh.FingerprintSHA256(impostor.PublicKey()) +
		", the guest's (given to it in the seed) is " + fingerprint(t, pinnedKey.Public) + ": refusing to log in"
	if !strings.Contains(err.Error(), want) {
		t.Errorf("error %q\nlacks %q", err, want)
	}
	if n := srv.authed.Load(); n != 0 {
		t.Errorf("the impostor was offered %d login keys", n)
	}

	// WaitReady keeps refusing it until its deadline and says why.
	_, err = WaitReady(testCtx(t, time.Second), target, 100*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "host key mismatch") {
		t.Fatalf("WaitReady = %v, want the mismatch as the last attempt's error", err)
	}
	if n := srv.authed.Load(); n != 0 {
		t.Errorf("the impostor was offered %d login keys", n)
	}
}

// TestNoHostKeyNoLogin: there is no trust on first use; a target without
// a host key is refused before any connection is made.
func TestNoHostKeyNoLogin(t *testing.T) {
	login, loginSigner := newKey(t, "login")
	srv := newSSHD(t, login, loginSigner)
	target := Target{Addr: srv.addr, User: "solstice", PrivatePEM: login.PrivatePEM}
	if _, err := Dial(testCtx(t, 10*time.Second), target); !errors.Is(err, ErrNoHostKey) {
		t.Fatalf("Dial = %v, want %v", err, ErrNoHostKey)
	}
	start := time.Now()
	if _, err := WaitReady(testCtx(t, 10*time.Second), target, 100*time.Millisecond); !errors.Is(err, ErrNoHostKey) {
		t.Fatalf("WaitReady = %v, want %v", err, ErrNoHostKey)
	}
	if time.Since(start) > 5*time.Second {
		t.Error("WaitReady retried a target that can never log in")
	}
	if n := srv.accepted.Load(); n != 0 {
		t.Errorf("%d connections were made without a pinned host key", n)
	}
}

func fingerprint(t *testing.T, wire []byte) string {
	k, err := ssh.ParsePublicKey(wire)
	if err != nil {
		t.Fatal(err)
	}
	return ssh.FingerprintSHA256(k)
}

// A guest command's output is hostile too (a job can replace the agent
// the driver runs): Output keeps at most MaxOutput of stdout, failing
// past it, and the start of stderr, however much the command prints.
func TestOutputIsBounded(t *testing.T) {
	tests := []struct {
		name           string
		stdout, stderr int
		status         uint32
		wantErr        string
		wantOut        int
		wantStderr     int // bytes of stderr the error quotes, at most
	}{
		{name: "short answer", stdout: 100, wantOut: 100},
		{name: "answer of MaxOutput bytes", stdout: MaxOutput, wantOut: MaxOutput},
		{name: "endless answer", stdout: 8 * MaxOutput, wantErr: fmt.Sprintf("its output passed %d bytes", MaxOutput)},
		{name: "endless stderr, failing", stderr: 8 * MaxOutput, status: 1, wantErr: "exited with 1", wantStderr: maxStderr + len("…")},
	}
	login, _ := newKey(t, "login")
	host, hostSigner := newKey(t, "host")
	srv := newSSHD(t, login, hostSigner)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv.exec = func(_ string, stdout, stderr io.Writer) uint32 {
				stdout.Write(bytes.Repeat([]byte("o"), tt.stdout))
				stderr.Write(bytes.Repeat([]byte("e"), tt.stderr))
				return tt.status
			}
			ctx := testCtx(t, 30*time.Second)
			c, err := Dial(ctx, Target{Addr: srv.addr, User: "solstice", PrivatePEM: login.PrivatePEM, HostKey: host.Public})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			out, err := c.Output(ctx, "anything", nil)
			if tt.wantErr == "" {
				if err != nil || len(out) != tt.wantOut {
					t.Fatalf("Output = %d bytes, %v; want %d bytes", len(out), err, tt.wantOut)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Output = %d bytes, %v; want %q", len(out), err, tt.wantErr)
			}
			var ee *ExitError
			if errors.As(err, &ee) && len(ee.Stderr) > tt.wantStderr {
				t.Errorf("the error quotes %d bytes of stderr, want at most %d", len(ee.Stderr), tt.wantStderr)
			}
		})
	}
}
