// Package artifactfake is a strict, in-memory-index Actions artifact v4
// service (Twirp ArtifactService and signed blob URLs) for tests. It
// behaves as Gitea 1.26.1's routers/api/actions/artifactsv4.go does where a
// client can tell: Bearer token on Twirp calls, run id checked against the
// token, blocks stored per block id with their Content-Length, a block
// list required for more than one block, size and sha256 checked at
// finalize, only finalized artifacts listed and downloadable, signed URLs
// checked. On top it records as a problem what a careful client must not
// do (unknown JSON fields, the token sent to a signed URL, a block
// without a length); tests assert Problems() is empty.
package artifactfake

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Prefix is where the service is mounted, as on Gitea and GitHub.
const Prefix = "/twirp/github.actions.results.api.v1.ArtifactService/"

// Token makes a JWT-shaped runtime token whose scp claim names the run
// and job, as Gitea's CreateAuthorizationToken does (unsigned: the fake
// compares tokens, it does not verify them).
func Token(runID, jobID string) string {
	return TokenWithScope("Actions.Results:" + runID + ":" + jobID)
}

// TokenWithScope makes a JWT-shaped token with the given scp claim.
func TokenWithScope(scp string) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"scp": scp})
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims) + ".c2ln"
}

// Info is what the fake holds about one artifact.
type Info struct {
	ID        int64
	Name      string
	Final     string // the merged zip, "" until finalized
	Size      int64
	ExpiresAt string
	Blocks    int
}

type record struct {
	Info
	blocks    map[string]string // block id -> file
	blockList []string
	created   time.Time
}

// Server is one run's artifact service.
type Server struct {
	// BaseURL is the server's address as clients reach it; set it before
	// serving (signed URLs are built from it).
	BaseURL string

	runID, jobID, token string
	dir                 string
	secret              []byte

	mu         sync.Mutex
	nextID     int64
	arts       map[string]*record
	problems   []string
	failBlocks int
	blockPuts  int
	maxBlock   int64
	sizeLie    int64
	rewriteURL func(string) string
}

// New makes a service for one run that stores blocks and zips under dir.
func New(dir, runID, jobID string) *Server {
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	return &Server{runID: runID, jobID: jobID, token: Token(runID, jobID), dir: dir, secret: secret, arts: map[string]*record{}}
}

// RuntimeToken is the token clients must send.
func (s *Server) RuntimeToken() string { return s.token }

// SetToken makes the service accept another token (and only that one).
func (s *Server) SetToken(tok string) { s.mu.Lock(); s.token = tok; s.mu.Unlock() }

// Problems are the protocol violations seen so far.
func (s *Server) Problems() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.problems...)
}

// Artifact returns what the fake holds under name.
func (s *Server) Artifact(name string) (Info, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.arts[name]
	if !ok {
		return Info{}, false
	}
	return r.Info, true
}

// BlockStats are the number of block PUTs and the largest block stored.
func (s *Server) BlockStats() (puts int, largest int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.blockPuts, s.maxBlock
}

// FailBlocks makes the next n block PUTs answer 503.
func (s *Server) FailBlocks(n int) { s.mu.Lock(); s.failBlocks = n; s.mu.Unlock() }

// LieAboutSize adds d to the sizes ListArtifacts reports.
func (s *Server) LieAboutSize(d int64) { s.mu.Lock(); s.sizeLie = d; s.mu.Unlock() }

// RewriteDownloadURL changes the signed URLs GetSignedArtifactURL hands out.
func (s *Server) RewriteDownloadURL(f func(string) string) {
	s.mu.Lock()
	s.rewriteURL = f
	s.mu.Unlock()
}

func (s *Server) problem(format string, args ...any) {
	s.problems = append(s.problems, fmt.Sprintf(format, args...))
}

// ServeHTTP serves Prefix + method.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method, ok := strings.CutPrefix(r.URL.Path, Prefix)
	if !ok {
		http.NotFound(w, r)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch method {
	case "UploadArtifact":
		s.upload(w, r)
	case "DownloadArtifact":
		s.download(w, r)
	default:
		s.twirp(w, r, method)
	}
}

func twirpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": "internal", "msg": msg})
}

func writeProto(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) twirp(w http.ResponseWriter, r *http.Request, method string) {
	if r.Method != http.MethodPost {
		twirpError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		twirpError(w, http.StatusUnauthorized, "Bad authorization header")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		s.problem("%s with Content-Type %q", method, ct)
	}
	switch method {
	case "CreateArtifact":
		s.create(w, r)
	case "FinalizeArtifact":
		s.finalize(w, r)
	case "ListArtifacts":
		s.list(w, r)
	case "GetSignedArtifactURL":
		s.signedURL(w, r)
	default:
		twirpError(w, http.StatusNotFound, "no method "+method)
	}
}

// ids are the backend ids every request carries.
type ids struct {
	RunID string `json:"workflow_run_backend_id"`
	JobID string `json:"workflow_job_run_backend_id"`
}

// decode reads a request strictly (proto field names only) and checks its
// run id, as Gitea's validateRunIDV4 does.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any, id *ids) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.problem("%s: request does not decode strictly: %v", r.URL.Path, err)
		twirpError(w, http.StatusInternalServerError, "Error decode request body")
		return false
	}
	if id.RunID != s.runID || id.JobID == "" {
		twirpError(w, http.StatusBadRequest, "run-id does not match")
		return false
	}
	return true
}

// int64JSON is a protojson int64: a JSON string or number.
type int64JSON int64

func (n *int64JSON) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseInt(strings.Trim(string(b), `"`), 10, 64)
	*n = int64JSON(v)
	return err
}

func (s *Server) sign(endpoint, name string, id int64, expires string) string {
	mac := hmac.New(sha256.New, s.secret)
	fmt.Fprint(mac, endpoint, expires, name, id)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (s *Server) buildURL(endpoint string, a *record) string {
	expires := time.Now().Add(time.Hour).Format("2006-01-02 15:04:05.999999999 -0700 MST")
	return strings.TrimSuffix(s.BaseURL, "/") + Prefix + endpoint +
		"?sig=" + s.sign(endpoint, a.Name, a.ID, expires) + "&expires=" + url.QueryEscape(expires) +
		"&artifactName=" + url.QueryEscape(a.Name) + "&taskID=1&artifactID=" + strconv.FormatInt(a.ID, 10)
}

// verify checks a signed URL and returns the artifact it names.
func (s *Server) verify(w http.ResponseWriter, r *http.Request, endpoint string) *record {
	if r.Header.Get("Authorization") != "" {
		s.problem("%s: the client sent an Authorization header to a signed URL", endpoint)
	}
	q := r.URL.Query()
	id, _ := strconv.ParseInt(q.Get("artifactID"), 10, 64)
	if !hmac.Equal([]byte(q.Get("sig")), []byte(s.sign(endpoint, q.Get("artifactName"), id, q.Get("expires")))) {
		twirpError(w, http.StatusUnauthorized, "Error unauthorized")
		return nil
	}
	a := s.arts[q.Get("artifactName")]
	if a == nil || a.ID != id {
		twirpError(w, http.StatusNotFound, "Error artifact not found")
		return nil
	}
	return a
}

func (s *Server) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ids
		Name      string  `json:"name"`
		ExpiresAt *string `json:"expires_at"`
		Version   int     `json:"version"`
		MimeType  *string `json:"mime_type"`
	}
	if !s.decode(w, r, &req, &req.ids) {
		return
	}
	if req.Version != 4 || req.Name == "" {
		twirpError(w, http.StatusBadRequest, "bad request")
		return
	}
	a := s.arts[req.Name]
	if a == nil { // Gitea reuses the record of a name (CreateArtifact)
		s.nextID++
		a = &record{Info: Info{ID: s.nextID, Name: req.Name}, created: time.Now().UTC()}
		s.arts[req.Name] = a
	}
	a.blocks, a.blockList = map[string]string{}, nil
	if req.ExpiresAt != nil {
		if _, err := time.Parse(time.RFC3339, *req.ExpiresAt); err != nil {
			s.problem("expires_at %q is not RFC 3339", *req.ExpiresAt)
		}
		a.ExpiresAt = *req.ExpiresAt
	}
	writeProto(w, map[string]any{"ok": true, "signedUploadUrl": s.buildURL("UploadArtifact", a)})
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPut {
		twirpError(w, http.StatusMethodNotAllowed, "PUT only")
		return
	}
	a := s.verify(w, r, "UploadArtifact")
	if a == nil {
		return
	}
	switch q := r.URL.Query(); q.Get("comp") {
	case "block", "appendBlock":
		s.block(w, r, a, q.Get("blockid"))
	case "blocklist":
		var bl struct {
			Latest []string `xml:"Latest"`
		}
		if err := xml.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&bl); err != nil {
			twirpError(w, http.StatusInternalServerError, "Error uploading blocklist")
			return
		}
		a.blockList = bl.Latest
		w.WriteHeader(http.StatusCreated)
	default:
		twirpError(w, http.StatusBadRequest, "unknown comp")
	}
}

func (s *Server) block(w http.ResponseWriter, r *http.Request, a *record, id string) {
	s.blockPuts++
	if id == "" || r.ContentLength <= 0 {
		s.problem("block PUT without block id or Content-Length (%q, %d)", id, r.ContentLength)
	}
	if s.failBlocks > 0 {
		s.failBlocks--
		_, _ = io.Copy(io.Discard, r.Body)
		twirpError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	p := filepath.Join(s.dir, fmt.Sprintf("block-%d-%s", a.ID, base64.URLEncoding.EncodeToString([]byte(id))))
	n, err := saveFile(p, r.Body)
	if err != nil || n != r.ContentLength {
		twirpError(w, http.StatusInternalServerError, "Error uploading block blob")
		return
	}
	s.maxBlock = max(s.maxBlock, n)
	a.blocks[id] = p
	w.WriteHeader(http.StatusCreated)
}

func saveFile(p string, r io.Reader) (int64, error) {
	out, err := os.Create(p)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return n, err
}

func (s *Server) finalize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ids
		Name string    `json:"name"`
		Size int64JSON `json:"size"`
		Hash string    `json:"hash"`
	}
	if !s.decode(w, r, &req, &req.ids) {
		return
	}
	a := s.arts[req.Name]
	if a == nil {
		twirpError(w, http.StatusNotFound, "Error artifact not found")
		return
	}
	if a.blockList == nil && len(a.blocks) > 1 {
		twirpError(w, http.StatusInternalServerError, "blockmap is required for chunks > 1")
		return
	}
	merged := filepath.Join(s.dir, fmt.Sprintf("artifact-%d.zip", a.ID))
	size, sum, err := s.merge(merged, a)
	switch {
	case err != nil:
		twirpError(w, http.StatusInternalServerError, err.Error())
	case size != int64(req.Size):
		twirpError(w, http.StatusInternalServerError, "Error merge chunks size mismatch")
	case req.Hash != "sha256:"+sum:
		twirpError(w, http.StatusInternalServerError, "Error merge chunks")
	default:
		a.Final, a.Size, a.Blocks = merged, size, len(a.blockList)
		writeProto(w, map[string]any{"ok": true, "artifactId": strconv.FormatInt(a.ID, 10)})
	}
}

func (s *Server) merge(dst string, a *record) (int64, string, error) {
	out, err := os.Create(dst)
	if err != nil {
		return 0, "", err
	}
	defer out.Close()
	h := sha256.New()
	var size int64
	for _, id := range a.blockList {
		p, ok := a.blocks[id]
		if !ok {
			return 0, "", fmt.Errorf("missing chunk %s", id)
		}
		in, err := os.Open(p)
		if err != nil {
			return 0, "", err
		}
		n, err := io.Copy(io.MultiWriter(out, h), in)
		in.Close()
		if err != nil {
			return 0, "", err
		}
		size += n
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ids
		NameFilter *string    `json:"name_filter"`
		IDFilter   *int64JSON `json:"id_filter"`
	}
	if !s.decode(w, r, &req, &req.ids) {
		return
	}
	list := []map[string]any{}
	for _, a := range s.arts {
		if a.Final == "" || req.NameFilter != nil && *req.NameFilter != a.Name || req.IDFilter != nil && int64(*req.IDFilter) != a.ID {
			continue
		}
		list = append(list, map[string]any{"workflowRunBackendId": req.RunID, "workflowJobRunBackendId": req.JobID,
			"databaseId": strconv.FormatInt(a.ID, 10), "name": a.Name, "size": strconv.FormatInt(a.Size+s.sizeLie, 10),
			"createdAt": a.created.Format(time.RFC3339Nano)})
	}
	writeProto(w, map[string]any{"artifacts": list})
}

func (s *Server) signedURL(w http.ResponseWriter, r *http.Request) {
	var req struct {
		ids
		Name string `json:"name"`
	}
	if !s.decode(w, r, &req, &req.ids) {
		return
	}
	a := s.arts[req.Name]
	if a == nil || a.Final == "" {
		twirpError(w, http.StatusNotFound, "Error artifact not found")
		return
	}
	u := s.buildURL("DownloadArtifact", a)
	if s.rewriteURL != nil {
		u = s.rewriteURL(u)
	}
	writeProto(w, map[string]any{"signedUrl": u})
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		twirpError(w, http.StatusMethodNotAllowed, "GET only")
		return
	}
	a := s.verify(w, r, "DownloadArtifact")
	if a == nil || a.Final == "" {
		if a != nil {
			twirpError(w, http.StatusNotFound, "Error artifact not found")
		}
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	http.ServeFile(w, r, a.Final)
}
