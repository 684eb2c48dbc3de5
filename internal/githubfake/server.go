package githubfake

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Options configures a fake. The zero value is usable.
type Options struct {
	// MinRunnerVersion, if set (e.g. "2.329.0"), makes the broker answer
	// polls from older runnerVersion values with a RunnerVersionTooOld
	// error and makes /actions/runners/register refuse older versions.
	MinRunnerVersion string
	// LockDuration is how long a job stays locked after acquirejob or
	// renewjob (lockedUntil = now + LockDuration). If no renewjob arrives
	// in time the job is abandoned. Default 10 minutes.
	LockDuration time.Duration
	// PollTimeout is how long GET /broker/message holds an idle long
	// poll before answering 202 with no message. Default 50 seconds.
	PollTimeout time.Duration
	// SessionIdleTimeout deletes a broker session that has not polled
	// for this long (the runner vanished). Default 5 minutes.
	SessionIdleTimeout time.Duration
	// AllowRS256 makes minted JIT configs carry
	// requireFipsCryptography=False, so the client must sign its
	// client_assertion with RS256. By default (as the official runner
	// defaults) credentials require FIPS and the assertion must be PS256.
	// Runners registered via /actions/runners/register always require
	// PS256: that response has no field to turn FIPS off.
	AllowRS256 bool
	// NoAcknowledge sends should_acknowledge=false in RunnerJobRequest
	// messages; by default it is true and an acquirejob without a prior
	// acknowledge is recorded as a violation.
	NoAcknowledge bool
	// TokenLifetime is the expires_in of OAuth access tokens. Default 1h.
	// Expired access tokens get 401.
	TokenLifetime time.Duration
	// CancelTimeout is the timeout sent in JobCancellation. Default 5m.
	CancelTimeout time.Duration
	// Listener, if set, is where the fake serves instead of a new
	// loopback listener (e2e: one a VM guest can reach, since guests
	// upload artifacts and caches to the results service and its blobs
	// directly).
	Listener net.Listener
	// PAT, if set, is the only token accepted by the REST endpoints that
	// mint registration tokens and JIT configs. Any non-empty token
	// otherwise.
	PAT string
	// TLS serves https, as GitHub and GHES do, with a certificate for
	// 127.0.0.1 that only clients trusting Certificate accept.
	TLS bool
}

func (o *Options) setDefaults() {
	if o.LockDuration <= 0 {
		o.LockDuration = 10 * time.Minute
	}
	if o.PollTimeout <= 0 {
		o.PollTimeout = 50 * time.Second
	}
	if o.SessionIdleTimeout <= 0 {
		o.SessionIdleTimeout = 5 * time.Minute
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = time.Hour
	}
	if o.CancelTimeout <= 0 {
		o.CancelTimeout = 5 * time.Minute
	}
}

// Rejection is one request the fake refused (Status is the HTTP status it
// answered) or one protocol violation it noticed while still serving the
// request (Status 0).
type Rejection struct {
	Time   time.Time
	Method string
	Path   string
	Status int
	Reason string
}

func (r Rejection) String() string {
	return fmt.Sprintf("%s %s -> %d: %s", r.Method, r.Path, r.Status, r.Reason)
}

// Server is the fake. All methods are safe for concurrent use.
type Server struct {
	opts    Options
	ts      *httptest.Server
	signKey []byte // HMAC key for job tokens and blob signatures

	mu          sync.Mutex
	wake        chan struct{} // closed and replaced on every state change
	regTokens   map[string]string
	runners     map[string]*runner // by client id
	runnerNames map[string]*runner
	jobs        []*Job // queue order
	jobsByID    map[string]*Job
	blobs       map[string]*blob
	artifacts   map[string][]*artifact // by run (plan id)
	caches      []*cacheEntry
	nextID      int64
	rejections  []Rejection
	counters    Counters
	force401    int
	forceJob401 int
	userKeys    map[string][]string // by lower-case login (SetUserKeys)
}

// Counters are simple call counts.
type Counters struct {
	AuthCalls       int // POST /auth/token requests (successful or not)
	TokensIssued    int // access tokens minted
	SessionsCreated int // successful POST /broker/session
	SessionsDeleted int
	Unauthorized    int // 401 answers served (injected or genuine)
	Polls           int // GET /broker/message requests
	Acknowledges    int
}

// New starts a fake. Close it when done.
func New(opts Options) *Server {
	opts.setDefaults()
	s := &Server{
		opts:        opts,
		signKey:     randBytes(32),
		wake:        make(chan struct{}),
		regTokens:   map[string]string{},
		runners:     map[string]*runner{},
		runnerNames: map[string]*runner{},
		jobsByID:    map[string]*Job{},
		blobs:       map[string]*blob{},
		artifacts:   map[string][]*artifact{},
		nextID:      1000,
	}
	s.ts = httptest.NewUnstartedServer(s.routes())
	if opts.Listener != nil {
		s.ts.Listener.Close()
		s.ts.Listener = opts.Listener
	}
	if opts.TLS {
		s.ts.StartTLS()
	} else {
		s.ts.Start()
	}
	return s
}

// CertificatePEM is the certificate a TLS fake serves, PEM-encoded (for
// a client's trust store, e.g. SSL_CERT_FILE); empty without TLS.
func (s *Server) CertificatePEM() []byte {
	if s.ts.Certificate() == nil {
		return nil
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.ts.Certificate().Raw})
}

// URL is the base URL of the fake (no trailing slash), e.g. for GHES-style
// configuration the GitHub URL is URL()+"/owner/repo".
func (s *Server) URL() string { return s.ts.URL }

// GitHubURL is the runner --url for a repository ("owner/repo") or
// organisation ("org") scope.
func (s *Server) GitHubURL(scope string) string { return s.ts.URL + "/" + scope }

// APIURL is the GHES-style REST base (URL()+"/api/v3"). The same paths
// also work without the /api/v3 prefix (github.com style).
func (s *Server) APIURL() string { return s.ts.URL + "/api/v3" }

// AuthorizationURL is the OAuth token endpoint runners authenticate at.
func (s *Server) AuthorizationURL() string { return s.ts.URL + "/auth/token" }

// BrokerURL is the broker base URL (ServerUrlV2), with a trailing slash.
func (s *Server) BrokerURL() string { return s.ts.URL + "/broker/" }

// RunServiceURL is the run service base URL, with a trailing slash.
func (s *Server) RunServiceURL() string { return s.ts.URL + "/run/" }

// ResultsURL is system.github.results_endpoint, with a trailing slash.
func (s *Server) ResultsURL() string { return s.ts.URL + "/results/" }

// Close shuts the server down and fails pending Job.Wait calls.
func (s *Server) Close() {
	s.ts.CloseClientConnections()
	s.ts.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, j := range s.jobs {
		j.finishLocked(errServerClosed)
	}
	s.notifyLocked()
}

// Rejections returns every refused request and noticed violation so far.
func (s *Server) Rejections() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejection(nil), s.rejections...)
}

// Counters returns a snapshot of the call counters.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counters
}

// ForceUnauthorized makes the next n requests to endpoints authenticated
// with the runner's OAuth access token (broker and acquirejob) answer 401.
// Each injected 401 also revokes the runner's current access token, so the
// client really has to re-authenticate at the authorization URL.
func (s *Server) ForceUnauthorized(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.force401 += n
}

// ForceJobUnauthorized makes the next n requests authenticated with a job
// token (renewjob, completejob, results, feed) answer 401. The job token
// stays valid: a client is expected to retry.
func (s *Server) ForceJobUnauthorized(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.forceJob401 += n
}

var errServerClosed = fmt.Errorf("githubfake: server closed")

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	s.restRoutes(mux)
	mux.HandleFunc("POST /auth/token", s.handleToken)
	s.brokerRoutes(mux)
	s.runRoutes(mux)
	s.resultsRoutes(mux)
	s.artifactRoutes(mux)
	s.cacheRoutes(mux)
	mux.HandleFunc("/blob/", s.handleBlob)
	mux.HandleFunc("GET /feed/{job}", s.handleFeed)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if s.handleUserKeys(w, r) {
			return
		}
		s.record(r, http.StatusNotFound, "no such endpoint")
		writeJSON(w, http.StatusNotFound, map[string]string{"message": "Not Found"})
	})
	return mux
}

// notifyLocked wakes every waiter (long polls, Job.Wait). s.mu held.
func (s *Server) notifyLocked() {
	close(s.wake)
	s.wake = make(chan struct{})
}

// record stores a rejection (status>0) or a violation (status 0).
func (s *Server) record(r *http.Request, status int, reason string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.recordLocked(r, status, reason)
}

func (s *Server) recordLocked(r *http.Request, status int, reason string) {
	if status == http.StatusUnauthorized {
		s.counters.Unauthorized++
	}
	s.rejections = append(s.rejections, Rejection{
		Time: time.Now(), Method: r.Method, Path: r.URL.Path, Status: status, Reason: reason,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// restError answers like the GitHub REST API.
func (s *Server) restError(w http.ResponseWriter, r *http.Request, status int, reason string) {
	s.record(r, status, reason)
	writeJSON(w, status, map[string]string{"message": reason})
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

func randHex(n int) string { return hex.EncodeToString(randBytes(n)) }

// newGUID returns a random RFC 4122 version 4 UUID string.
func newGUID() string {
	b := randBytes(16)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// isGUID reports whether s is a hyphenated GUID as .NET's Guid.ToString()
// writes it ("D" format, lowercase).
func isGUID(s string) bool {
	if len(s) != 36 || strings.ToLower(s) != s {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdef", c) {
				return false
			}
		}
	}
	return true
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(h, "Bearer ")
	return tok, ok && tok != ""
}
