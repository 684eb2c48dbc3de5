package contract

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// DebugSSH asks for a debug SSH session into the job's VM when the job
// fails. A shim sets it only when the repository opted in and the forge
// gave the triggering user's public keys; the keys are public, so the
// plan may carry them.
type DebugSSH struct {
	// User is the forge login the keys belong to, for the log line.
	User string `json:"user"`
	// Keys are the user's public keys, one authorized_keys line each
	// (type, base64, optional comment; no options).
	Keys []string `json:"keys"`
}

// Bounds on a plan's debug keys: enough for any real user, small enough
// for a dispatch payload.
const (
	MaxDebugKeys   = 16
	MaxDebugKeyLen = 8 << 10
)

// debugKeyTypes are the public key algorithms an authorized_keys line may
// start with; anything else (an option such as command=…) is refused, so
// a key can never carry options into the guest.
var debugKeyTypes = []string{
	"ssh-ed25519", "ssh-rsa", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384",
	"ecdsa-sha2-nistp521", "sk-ssh-ed25519@openssh.com", "sk-ecdsa-sha2-nistp256@openssh.com",
}

// CheckDebugSSH validates a plan's debug request; nil is valid (no debug).
func CheckDebugSSH(d *DebugSSH) error {
	if d == nil {
		return nil
	}
	if d.User == "" || len(d.User) > 255 || strings.ContainsAny(d.User, " \t\r\n") {
		return fmt.Errorf("user %.40q: want a forge login", d.User)
	}
	if len(d.Keys) == 0 {
		return errors.New("no keys")
	}
	if len(d.Keys) > MaxDebugKeys {
		return fmt.Errorf("%d keys, over %d", len(d.Keys), MaxDebugKeys)
	}
	for i, k := range d.Keys {
		if err := CheckDebugKey(k); err != nil {
			return fmt.Errorf("key %d: %w", i+1, err)
		}
	}
	return nil
}

// CheckDebugKey checks that k is one plain authorized_keys line: a known
// key type, a base64 blob and an optional comment, without options or
// line breaks.
func CheckDebugKey(k string) error {
	if len(k) > MaxDebugKeyLen {
		return fmt.Errorf("%d bytes, over %d", len(k), MaxDebugKeyLen)
	}
	if strings.ContainsAny(k, "\r\n\x00") {
		return errors.New("more than one line")
	}
	fields := strings.Fields(k)
	if len(fields) < 2 {
		return errors.New("want TYPE BASE64 [COMMENT]")
	}
	known := false
	for _, t := range debugKeyTypes {
		known = known || fields[0] == t
	}
	if !known {
		return fmt.Errorf("unknown key type %.40q", fields[0])
	}
	for _, c := range fields[1] {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return errors.New("the key is not base64")
		}
	}
	return nil
}

// Debug session event types. The driver, not the guest, writes them, after
// a failed job's job_finished, when the plan asked for a session:
// debug_session when one opens (Debug says where), then debug_ended when
// it closes or when none could open (Message says why). A guest's stream
// ends at job_finished, so a guest cannot forge them.
const (
	TypeDebugSession = "debug_session"
	TypeDebugEnded   = "debug_ended"
)

// DebugSession is where a debug session listens and until when.
type DebugSession struct {
	Host    string    `json:"host"`
	Port    int       `json:"port"`
	User    string    `json:"user"` // the guest user to log in as
	Expires time.Time `json:"expires"`
}

// Command is the line a user types to connect.
func (s *DebugSession) Command() string {
	return fmt.Sprintf("ssh -p %d %s@%s", s.Port, s.User, s.Host)
}

// WaitsForDebug reports whether a stream that just delivered ev goes on
// to a debug session's events: ev is a failed job's job_finished and the
// plan asked for a session. Readers of such a job's stream stop at
// debug_ended (or an infra_error) instead of at job_finished.
func WaitsForDebug(ev *Event, debug bool) bool {
	return debug && ev.Type == TypeJobFinished && ev.Conclusion == Failure
}

// Ends reports whether ev ends the stream of a job whose plan asked for a
// debug session (debug) or not.
func Ends(ev *Event, debug bool) bool {
	if ev.Type == TypeDebugEnded {
		return true
	}
	return ev.Terminal() && !WaitsForDebug(ev, debug)
}
