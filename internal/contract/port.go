package contract

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
)

// The agent port is how a warm clone's job starts without SSH: a warm
// template leaves `solstice-guest serve` running as root on a virtio-serial
// port named AgentPortName, and each clone's driver talks to it through
// its QEMU's socket. Under emulation an SSH login costs a second or more,
// and the shell, sudo and programs of an identity script as much again;
// the agent, already running, does the same work in-process.
//
// Both ways the port carries frames: a header line "KIND LENGTH\n", then
// LENGTH bytes of payload. The driver sends an identity frame (Identity),
// which the agent answers with ok or error; then start (Start), after
// which the agent sends the job's events as data frames (the bytes of its
// events file from offset 0, as `follow --from 0` prints them) and one
// exit frame (Exit) when its follower ends; or release, and the agent
// exits, leaving the job to SSH.
const (
	AgentServe    = "serve"              // the agent's verb that serves the port
	AgentPortName = "org.solstice.agent" // the virtio-serial port's name
)

// Frame kinds.
const (
	FrameIdentity = "identity" // driver → agent: Identity (JSON)
	FrameStart    = "start"    // driver → agent: Start (JSON)
	FrameRelease  = "release"  // driver → agent: nothing more comes; exit
	FrameOK       = "ok"       // agent → driver: the request was done
	FrameError    = "error"    // agent → driver: it was not, and why (text)
	FrameData     = "data"     // agent → driver: event stream bytes
	FrameExit     = "exit"     // agent → driver: Exit (JSON); the stream ended
)

// frameLimits bound each kind's payload: a reader refuses a longer frame
// before reading it, whichever side wrote it.
var frameLimits = map[string]int{
	FrameIdentity: 64 << 10,
	FrameStart:    PortMaxStart,
	FrameRelease:  0,
	FrameOK:       0,
	FrameError:    PortMaxError,
	FrameData:     PortMaxData,
	FrameExit:     8 << 10,
}

// PortMaxData is the largest data frame; PortMaxStart the largest start
// frame (a plan within the dispatch payload limit, secrets within the
// agent's bound on its stdin, both base64 in JSON).
const (
	PortMaxData  = 64 << 10
	PortMaxStart = 48 << 20
	PortMaxError = 4 << 10 // an error frame's message
)

// maxHeader bounds a frame's header line: the longest kind, a space, ten
// digits and the newline fit well within it.
const maxHeader = 32

// ErrFrame is wrapped by every error about a malformed frame.
var ErrFrame = errors.New("bad frame on the agent port")

// WriteFrame writes one frame.
func WriteFrame(w io.Writer, kind string, payload []byte) error {
	limit, ok := frameLimits[kind]
	if !ok {
		return fmt.Errorf("%w: unknown kind %q", ErrFrame, kind)
	}
	if len(payload) > limit {
		return fmt.Errorf("%w: %s frame of %d bytes is over its %d-byte limit", ErrFrame, kind, len(payload), limit)
	}
	buf := make([]byte, 0, maxHeader+len(payload))
	buf = append(buf, kind...)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, int64(len(payload)), 10)
	buf = append(buf, '\n')
	buf = append(buf, payload...)
	_, err := w.Write(buf)
	return err
}

// WriteJSONFrame writes v as a frame's JSON payload.
func WriteJSONFrame(w io.Writer, kind string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s frame: %w", kind, err)
	}
	return WriteFrame(w, kind, b)
}

// ReadFrame reads one frame. Whatever the other side sends, it reads at
// most maxHeader bytes of header and the kind's limit of payload: an
// unknown kind, a malformed length or one over the limit is an ErrFrame.
// io.EOF means the stream ended between frames.
func ReadFrame(r *bufio.Reader) (string, []byte, error) {
	header, err := readHeader(r)
	if err != nil {
		return "", nil, err
	}
	kind, size, ok := strings.Cut(header, " ")
	limit, known := frameLimits[kind]
	if !ok || !known {
		return "", nil, fmt.Errorf("%w: header %q", ErrFrame, header)
	}
	n, err := strconv.Atoi(size)
	if err != nil || n < 0 || size != strconv.Itoa(n) {
		return "", nil, fmt.Errorf("%w: header %q: bad length", ErrFrame, header)
	}
	if n > limit {
		return "", nil, fmt.Errorf("%w: %s frame of %d bytes is over its %d-byte limit", ErrFrame, kind, n, limit)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return "", nil, cutShort(kind+" frame", err)
	}
	return kind, payload, nil
}

// cutShort is a frame's end coming too soon: the stream ended in it (the
// other side's fault, an ErrFrame), or reading failed (a closed or timed
// out connection, returned as it is).
func cutShort(what string, err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %s cut short: %v", ErrFrame, what, err)
	}
	return fmt.Errorf("read the agent port: %w", err)
}

func readHeader(r *bufio.Reader) (string, error) {
	var b []byte
	for len(b) <= maxHeader {
		c, err := r.ReadByte()
		if err == io.EOF && len(b) == 0 {
			return "", io.EOF
		}
		if err != nil {
			return "", cutShort("header", err)
		}
		if c == '\n' {
			return string(b), nil
		}
		b = append(b, c)
	}
	return "", fmt.Errorf("%w: header longer than %d bytes: %q", ErrFrame, maxHeader, b)
}

// Identity is what makes a warm clone its task's guest instead of a copy
// of its template: the agent applies all of it before answering ok.
type Identity struct {
	UnixNano      int64  `json:"unix_nano"`      // the clock, as the driver sent it
	Seed          []byte `json:"seed"`           // mixed into the kernel's random pool, then reseeded
	MachineID     string `json:"machine_id"`     // 32 lowercase hex digits
	Hostname      string `json:"hostname"`       // also the name 127.0.1.1 resolves to
	InstanceID    string `json:"instance_id"`    // cloud-init's, where the image has cloud-init
	User          string `json:"user"`           // the login user, whose authorized_keys is replaced
	AuthorizedKey string `json:"authorized_key"` // the task's login key, one authorized_keys line
	HostKeyPEM    string `json:"host_key_pem"`   // the task's ed25519 host key (OpenSSH PEM)
	HostKeyPub    string `json:"host_key_pub"`   // and its public line
}

var (
	machineIDRe = regexp.MustCompile(`^[0-9a-f]{32}$`)
	hostnameRe  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	userRe      = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	instanceRe  = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
)

// Validate says which field of an identity the agent could not apply
// safely: every value ends up in a file or a system call as it is.
func (id Identity) Validate() error {
	var problems []string
	check := func(ok bool, field, why string) {
		if !ok {
			problems = append(problems, field+": "+why)
		}
	}
	check(id.UnixNano > 0, "unix_nano", "not a time")
	check(len(id.Seed) >= 32, "seed", "fewer than 32 bytes")
	check(machineIDRe.MatchString(id.MachineID), "machine_id", "not 32 lowercase hex digits")
	check(hostnameRe.MatchString(id.Hostname), "hostname", "not a host name label")
	check(id.InstanceID == "" || instanceRe.MatchString(id.InstanceID), "instance_id", "not an instance id")
	check(userRe.MatchString(id.User), "user", "not a user name")
	check(oneLine(id.AuthorizedKey), "authorized_key", "empty or more than one line")
	check(strings.HasPrefix(id.HostKeyPEM, "-----BEGIN OPENSSH PRIVATE KEY-----"), "host_key_pem", "not an OpenSSH private key")
	check(strings.HasPrefix(id.HostKeyPub, "ssh-ed25519 ") && oneLine(id.HostKeyPub), "host_key_pub", "not one ssh-ed25519 public key line")
	if len(problems) > 0 {
		return fmt.Errorf("identity: %s", strings.Join(problems, "; "))
	}
	return nil
}

func oneLine(s string) bool {
	return strings.TrimSpace(s) != "" && !strings.ContainsAny(s, "\r\n\x00")
}

// Start is the job a clone runs: the plan (as the driver would have
// written it to plan.json) and the secrets object for the agent's stdin.
type Start struct {
	Plan    []byte          `json:"plan"`
	Secrets json.RawMessage `json:"secrets"`
}

// Exit ends a clone's event stream: the follower's exit status, and the
// end of what it wrote to stderr.
type Exit struct {
	Code   int    `json:"code"`
	Stderr string `json:"stderr,omitempty"`
}
