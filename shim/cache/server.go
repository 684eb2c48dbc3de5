package cache

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
)

const (
	// ServicePrefix is where the Twirp service is mounted, as on GitHub.
	ServicePrefix = "/twirp/github.actions.results.api.v1.CacheService/"
	blobPath      = "/cache/blob"
	maxRequest    = 64 << 10
	maxBlock      = 64 << 20
	urlTTL        = time.Hour
	maxKeyLen     = 512
	maxRestore    = 10
)

var versionPattern = regexp.MustCompile(`^[0-9A-Za-z._-]{1,128}$`)

// Server serves the cache service over one Store.
type Server struct {
	store  *Store
	minter *Minter
	base   string // how guests reach this server, e.g. http://10.0.0.5:8088
	log    hclog.Logger
}

// NewServer makes a handler; base is the URL guests use to reach it.
func NewServer(store *Store, minter *Minter, base string, log hclog.Logger) *Server {
	return &Server{store: store, minter: minter, base: strings.TrimSuffix(base, "/"), log: log}
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == blobPath:
		s.blob(w, r)
	case strings.HasPrefix(r.URL.Path, ServicePrefix):
		s.twirp(w, r, strings.TrimPrefix(r.URL.Path, ServicePrefix))
	default:
		http.NotFound(w, r)
	}
}

// twirpError writes a Twirp error body.
func twirpError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "msg": msg})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// request is the union of the three calls' fields (proto names).
type request struct {
	Metadata    json.RawMessage `json:"metadata"`
	Key         string          `json:"key"`
	Version     string          `json:"version"`
	RestoreKeys []string        `json:"restore_keys"`
	SizeBytes   json.Number     `json:"size_bytes"`
}

func (s *Server) twirp(w http.ResponseWriter, r *http.Request, method string) {
	if r.Method != http.MethodPost {
		twirpError(w, http.StatusMethodNotAllowed, "bad_route", "POST only")
		return
	}
	repo, err := s.minter.Verify(strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "))
	if err != nil {
		twirpError(w, http.StatusUnauthorized, "unauthenticated", "invalid cache token")
		return
	}
	req, err := decodeRequest(r)
	if err != nil {
		twirpError(w, http.StatusBadRequest, "invalid_argument", err.Error())
		return
	}
	switch method {
	case "GetCacheEntryDownloadURL":
		s.lookup(w, repo, req)
	case "CreateCacheEntry":
		s.create(w, repo, req)
	case "FinalizeCacheEntryUpload":
		s.finalize(w, repo, req)
	default:
		twirpError(w, http.StatusNotFound, "bad_route", "no method "+method)
	}
}

func decodeRequest(r *http.Request) (request, error) {
	var req request
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequest))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(&req); err != nil {
		return req, fmt.Errorf("request body: %w", err)
	}
	if err := checkKey(req.Key); err != nil {
		return req, err
	}
	if !versionPattern.MatchString(req.Version) {
		return req, errors.New("version must be 1 to 128 of [0-9A-Za-z._-]")
	}
	if len(req.RestoreKeys) > maxRestore {
		return req, fmt.Errorf("at most %d restore keys", maxRestore)
	}
	for _, k := range req.RestoreKeys {
		if err := checkKey(k); err != nil {
			return req, fmt.Errorf("restore key: %w", err)
		}
	}
	return req, nil
}

// checkKey applies actions/cache's own rules: 1 to 512 characters, no
// comma.
func checkKey(k string) error {
	if k == "" || len(k) > maxKeyLen || strings.ContainsAny(k, ",\x00") {
		return fmt.Errorf("key must be 1 to %d characters without commas", maxKeyLen)
	}
	return nil
}

func (s *Server) lookup(w http.ResponseWriter, repo string, req request) {
	e, err := s.store.Lookup(repo, req.Key, req.RestoreKeys, req.Version)
	if errors.Is(err, ErrNotFound) {
		writeJSON(w, map[string]any{"ok": false, "signedDownloadUrl": "", "matchedKey": ""})
		return
	}
	if err != nil {
		s.fail(w, "look up cache entry", err)
		return
	}
	writeJSON(w, map[string]any{"ok": true, "signedDownloadUrl": s.signedURL(repo, e.ID, "get"), "matchedKey": e.Key})
}

func (s *Server) create(w http.ResponseWriter, repo string, req request) {
	id, err := s.store.Reserve(repo, req.Key, req.Version)
	if errors.Is(err, ErrExists) {
		twirpError(w, http.StatusConflict, "already_exists", "cache entry with the same key and version already exists")
		return
	}
	if err != nil {
		s.fail(w, "reserve cache entry", err)
		return
	}
	writeJSON(w, map[string]any{"ok": true, "signedUploadUrl": s.signedURL(repo, id, "put")})
}

// finalize commits the pending upload of the request's key and version
// (Twirp's request names no upload id; Reserve allows one per pair).
func (s *Server) finalize(w http.ResponseWriter, repo string, req request) {
	size, err := strconv.ParseInt(string(req.SizeBytes), 10, 64)
	if err != nil || size <= 0 {
		twirpError(w, http.StatusBadRequest, "invalid_argument", "size_bytes must be a positive number")
		return
	}
	id, err := s.store.pendingFor(repo, req.Key, req.Version)
	if err != nil {
		twirpError(w, http.StatusNotFound, "not_found", "no upload of this key and version is pending")
		return
	}
	e, err := s.store.Finalize(repo, id, req.Key, req.Version, size)
	switch {
	case errors.Is(err, ErrExists):
		twirpError(w, http.StatusConflict, "already_exists", err.Error())
	case err != nil:
		twirpError(w, http.StatusBadRequest, "failed_precondition", err.Error())
	default:
		s.log.Info("cache entry saved", "repository", repo, "key", e.Key, "size", e.Size)
		writeJSON(w, map[string]any{"ok": true, "entryId": strconv.FormatInt(entryNumber(e.ID), 10)})
	}
}

// entryNumber is a stable int64 for the entry id, as the API wants one.
func entryNumber(id string) int64 {
	sum := sha256.Sum256([]byte(id))
	var n int64
	for _, b := range sum[:7] {
		n = n<<8 | int64(b)
	}
	return n
}

func (s *Server) fail(w http.ResponseWriter, what string, err error) {
	s.log.Error("cache service", "op", what, "error", err)
	twirpError(w, http.StatusInternalServerError, "internal", what+" failed")
}

// signedURL is a blob URL for one entry and operation, valid urlTTL.
func (s *Server) signedURL(repo, id, op string) string {
	exp := strconv.FormatInt(time.Now().Add(urlTTL).Unix(), 10)
	r := base64.RawURLEncoding.EncodeToString([]byte(repo))
	q := url.Values{"r": {r}, "e": {id}, "op": {op}, "exp": {exp}, "sig": {s.urlSig(r, id, op, exp)}}
	return s.base + blobPath + "?" + q.Encode()
}

func (s *Server) urlSig(r, id, op, exp string) string {
	mac := hmac.New(sha256.New, s.minter.key)
	mac.Write([]byte("cache-url\x00" + r + "\x00" + id + "\x00" + op + "\x00" + exp))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// checkURL verifies a blob URL and returns its repository and entry id.
func (s *Server) checkURL(q url.Values, op string) (string, string, bool) {
	r, id, exp := q.Get("r"), q.Get("e"), q.Get("exp")
	if q.Get("op") != op || !hmac.Equal([]byte(q.Get("sig")), []byte(s.urlSig(r, id, op, exp))) {
		return "", "", false
	}
	n, err := strconv.ParseInt(exp, 10, 64)
	repo, derr := base64.RawURLEncoding.DecodeString(r)
	if err != nil || derr != nil || time.Now().Unix() > n {
		return "", "", false
	}
	return string(repo), id, true
}

func (s *Server) blob(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet, http.MethodHead:
		s.download(w, r)
	case http.MethodPut:
		s.upload(w, r)
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (s *Server) download(w http.ResponseWriter, r *http.Request) {
	repo, id, ok := s.checkURL(r.URL.Query(), "get")
	if !ok {
		http.Error(w, "bad or expired signature", http.StatusForbidden)
		return
	}
	p, err := s.store.BlobPath(repo, id)
	if err != nil {
		http.Error(w, "no such entry", http.StatusNotFound)
		return
	}
	f, err := os.Open(p)
	if err != nil {
		http.Error(w, "entry evicted", http.StatusNotFound)
		return
	}
	defer f.Close()
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, "", time.Time{}, f)
}

func (s *Server) upload(w http.ResponseWriter, r *http.Request) {
	repo, id, ok := s.checkURL(r.URL.Query(), "put")
	if !ok {
		http.Error(w, "bad or expired signature", http.StatusForbidden)
		return
	}
	var err error
	switch q := r.URL.Query(); q.Get("comp") {
	case "block":
		if r.ContentLength < 0 || r.ContentLength > maxBlock {
			http.Error(w, "a block needs a Content-Length of at most 64 MiB", http.StatusRequestEntityTooLarge)
			return
		}
		err = s.store.PutBlock(repo, id, q.Get("blockid"), r.Body, r.ContentLength)
	case "blocklist":
		var bl struct {
			Latest []string `xml:"Latest"`
		}
		if err = xml.NewDecoder(io.LimitReader(r.Body, 8<<20)).Decode(&bl); err == nil {
			err = s.store.CommitBlocks(repo, id, bl.Latest)
		}
	case "":
		err = s.store.PutWhole(repo, id, r.Body)
	default:
		http.Error(w, "unknown comp", http.StatusBadRequest)
		return
	}
	s.uploadAnswer(w, err)
}

func (s *Server) uploadAnswer(w http.ResponseWriter, err error) {
	switch {
	case errors.Is(err, ErrNotFound):
		http.Error(w, "no such upload", http.StatusNotFound)
	case errors.Is(err, ErrTooLarge):
		http.Error(w, "cache entry too large", http.StatusRequestEntityTooLarge)
	case err != nil:
		http.Error(w, err.Error(), http.StatusBadRequest)
	default:
		w.WriteHeader(http.StatusCreated)
	}
}
