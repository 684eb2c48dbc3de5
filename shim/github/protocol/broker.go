package protocol

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ErrSessionConflict: the broker answered 409 to CreateSession — a session
// for this runner already exists (the runner retries for up to 4 minutes).
var ErrSessionConflict = errors.New("protocol: a session for this runner already exists")

// DefaultPollTimeout is the client-side timeout of one GetMessage long poll
// (the runner's is 60 s; the broker holds a poll for about 50 s).
const DefaultPollTimeout = 60 * time.Second

// RunnerInfo is what the runner reports about itself on broker calls
// (query runnerVersion/os/architecture/disableUpdate) and in the session.
type RunnerInfo struct {
	// Version defaults to DefaultRunnerVersion. See the package doc.
	Version string
	// OS and Arch are VarUtil.OS / VarUtil.OSArchitecture values; GitHub
	// knows "Linux", "macOS", "Windows" and "X86", "X64", "ARM", "ARM64".
	// Defaults: "Linux", "X64".
	OS, Arch      string
	DisableUpdate bool
	// Added: OSDescription (session agent.osDescription; default
	// "illumos (solstice)") and UserAgent (default DefaultUserAgent(Version)).
	OSDescription string
	UserAgent     string
}

func (i RunnerInfo) withDefaults() RunnerInfo {
	if i.Version == "" {
		i.Version = DefaultRunnerVersion
	}
	if i.OS == "" {
		i.OS = "Linux"
	}
	if i.Arch == "" {
		i.Arch = "X64"
	}
	if i.OSDescription == "" {
		i.OSDescription = "illumos (solstice)"
	}
	if i.UserAgent == "" {
		i.UserAgent = DefaultUserAgent(i.Version)
	}
	return i
}

// Client is the runner-level client: broker calls and acquirejob, all
// authenticated with the runner's OAuth token. On HTTP 401 a call
// invalidates the token, re-authenticates once and retries once.
type Client struct {
	creds *Credentials
	ts    *TokenSource
	info  RunnerInfo
	hc    *http.Client
	// PollTimeout bounds one GetMessage; DefaultPollTimeout if zero.
	PollTimeout time.Duration
}

// NewClient returns a Client; hc may be nil. ts's User-Agent is set to
// info's unless it has one.
func NewClient(c *Credentials, ts *TokenSource, info RunnerInfo, hc *http.Client) *Client {
	info = info.withDefaults()
	if ts.UserAgent == "" {
		ts.UserAgent = info.UserAgent
	}
	return &Client{creds: c, ts: ts, info: info, hc: hc}
}

// do sends c with the runner token, retrying once after a 401.
func (cl *Client) do(ctx context.Context, c call) (reply, error) {
	for attempt := 0; ; attempt++ {
		tok, err := cl.ts.Token(ctx)
		if err != nil {
			return reply{}, fmt.Errorf("%s: %w", c.op, err)
		}
		r, err := c.do(ctx, cl.hc, cl.info.UserAgent, "Bearer "+tok)
		if err != nil || r.status != http.StatusUnauthorized {
			return r, err
		}
		cl.ts.Invalidate()
		if attempt == 1 {
			return r, fmt.Errorf("%w (after re-authenticating)", c.errorFor(r))
		}
	}
}

// AgentReference is TaskAgentReference as sent in a session.
type AgentReference struct {
	ID            int64  `json:"id"`
	Name          string `json:"name"`
	Version       string `json:"version"`
	OSDescription string `json:"osDescription,omitempty"`
}

// Session is a broker session (TaskAgentSession).
type Session struct {
	SessionID         string         `json:"sessionId"`
	OwnerName         string         `json:"ownerName"`
	Agent             AgentReference `json:"agent"`
	UseFipsEncryption bool           `json:"useFipsEncryption"`

	mu   sync.Mutex
	base string // broker base URL; changed by BrokerMigration
}

// BrokerURL is the broker base this session currently talks to.
func (s *Session) BrokerURL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.base
}

func (s *Session) setBase(u string) {
	s.mu.Lock()
	s.base = u
	s.mu.Unlock()
}

// CreateSession: POST {ServerURLV2}/session with {sessionId (empty GUID),
// ownerName, agent{id,name,version,osDescription}, useFipsEncryption}
// (BrokerHttpClient.CreateSessionAsync). 409 wraps ErrSessionConflict.
func (cl *Client) CreateSession(ctx context.Context) (*Session, error) {
	const op = "protocol: create broker session"
	host, _ := os.Hostname()
	if host == "" {
		host = "RUNNER"
	}
	req := &Session{
		SessionID: "00000000-0000-0000-0000-000000000000",
		OwnerName: fmt.Sprintf("%s (PID: %d)", host, os.Getpid()),
		Agent: AgentReference{ID: cl.creds.RunnerID, Name: cl.creds.RunnerName,
			Version: cl.info.Version, OSDescription: cl.info.OSDescription},
	}
	u, err := joinURL(cl.creds.ServerURLV2, "session")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	c, err := jsonCall(op, http.MethodPost, u, req)
	if err != nil {
		return nil, err
	}
	r, err := cl.do(ctx, c)
	if err != nil {
		return nil, err
	}
	if r.status == http.StatusConflict {
		return nil, fmt.Errorf("%w: %w", ErrSessionConflict, c.errorFor(r))
	}
	if !r.ok() {
		return nil, c.errorFor(r)
	}
	s := &Session{}
	if err := decode(op, r.body, s); err != nil {
		return nil, err
	}
	s.base = cl.creds.ServerURLV2
	return s, nil
}

// DeleteSession: DELETE {broker}/session (no query, as the runner does).
func (cl *Client) DeleteSession(ctx context.Context, s *Session) error {
	u, err := joinURL(s.BrokerURL(), "session")
	if err != nil {
		return fmt.Errorf("protocol: delete broker session: %w", err)
	}
	c := call{op: "protocol: delete broker session", method: http.MethodDelete, url: u}
	r, err := cl.do(ctx, c)
	if err != nil {
		return err
	}
	if !r.ok() {
		return c.errorFor(r)
	}
	return nil
}

// Status is the runner status reported while polling.
type Status string

// Status values (TaskAgentStatus names, as Enum.ToString() writes them).
const (
	Online Status = "Online"
	Busy   Status = "Busy"
)

// query is the broker query string: sessionId, status, runnerVersion, os,
// architecture[, disableUpdate] (BrokerHttpClient).
func (cl *Client) query(s *Session, st Status, withDisableUpdate bool) url.Values {
	q := url.Values{}
	q.Set("sessionId", s.SessionID)
	q.Set("status", string(st))
	q.Set("runnerVersion", cl.info.Version)
	q.Set("os", cl.info.OS)
	q.Set("architecture", cl.info.Arch)
	if withDisableUpdate {
		q.Set("disableUpdate", strconv.FormatBool(cl.info.DisableUpdate))
	}
	return q
}

// GetMessage long-polls GET {broker}/message. It returns nil, nil when
// there is no message (202, 204, empty body, or the poll timed out on our
// side). Broker error JSON comes back as a *BrokerError. A BrokerMigration
// message switches s to body.brokerBaseUrl and is returned too.
func (cl *Client) GetMessage(ctx context.Context, s *Session, st Status) (*Message, error) {
	const op = "protocol: get broker message"
	u, err := joinURL(s.BrokerURL(), "message")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	timeout := cl.PollTimeout
	if timeout <= 0 {
		timeout = DefaultPollTimeout
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	c := call{op: op, method: http.MethodGet, url: withQuery(u, cl.query(s, st, true))}
	r, err := cl.do(pctx, c)
	if err != nil {
		if ctx.Err() == nil && pctx.Err() != nil {
			return nil, nil // our poll timeout: no message
		}
		return nil, err
	}
	return cl.message(c, r, s)
}

func (cl *Client) message(c call, r reply, s *Session) (*Message, error) {
	if !r.ok() {
		if be := parseBrokerError(r); be != nil {
			return nil, fmt.Errorf("%s: %w", c.op, be)
		}
		return nil, c.errorFor(r)
	}
	if r.status == http.StatusAccepted || r.status == http.StatusNoContent {
		return nil, nil
	}
	body := strings.TrimSpace(string(r.body))
	if body == "" || body == "null" {
		return nil, nil
	}
	var m Message
	if err := decode(c.op, r.body, &m); err != nil {
		return nil, err
	}
	if strings.EqualFold(m.MessageType, MessageBrokerMigration) {
		mig, err := ParseBrokerMigration(m.Body)
		if err != nil {
			return nil, err
		}
		s.setBase(mig.BrokerBaseURL)
	}
	return &m, nil
}

// Acknowledge: POST {broker}/acknowledge?sessionId&status&runnerVersion&os
// &architecture with {"runnerRequestId"}. The runner only does this when
// RunnerJobRequest.ShouldAcknowledge is set; an AcknowledgeJobNotFound
// BrokerError means the job is gone.
func (cl *Client) Acknowledge(ctx context.Context, s *Session, runnerRequestID string, st Status) error {
	const op = "protocol: acknowledge runner request"
	u, err := joinURL(s.BrokerURL(), "acknowledge")
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	c, err := jsonCall(op, http.MethodPost, withQuery(u, cl.query(s, st, false)),
		map[string]string{"runnerRequestId": runnerRequestID})
	if err != nil {
		return err
	}
	r, err := cl.do(ctx, c)
	if err != nil {
		return err
	}
	if r.ok() {
		return nil
	}
	if be := parseBrokerError(r); be != nil {
		return fmt.Errorf("%s: %w", op, be)
	}
	return c.errorFor(r)
}
