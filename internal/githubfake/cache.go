package githubfake

// Cache service v2 (twirp, JSON) on the results service. Checked against
// actions/toolkit packages/cache:
//   src/generated/results/api/v1/cache.ts (CreateCacheEntryRequest:
//     metadata, key, version; FinalizeCacheEntryUploadRequest: metadata,
//     key, size_bytes (int64), version; GetCacheEntryDownloadURLRequest:
//     metadata, key, restore_keys, version; responses ok,
//     signed_upload_url, message / ok, entry_id, message / ok,
//     signed_download_url, matched_key),
//   src/generated/results/entities/v1/cachemetadata.ts and cachescope.ts
//     (repository_id int64, scope[] of scope, permission int64),
//   src/internal/shared/cacheTwirpClient.ts (POST, Bearer
//     ACTIONS_RUNTIME_TOKEN), src/cache.ts (keys: at most 512 characters,
//     no commas, at most 10 of them; version: the SHA-256 hex of paths,
//     compression and salt).
// Entries are scoped as on GitHub: by repository and ref; a job reads its
// own ref's entries and the default branch's. A second save of a key and
// version in one scope is refused with 409 already_exists, which
// actions/cache reports as a warning.

import (
	"fmt"
	"net/http"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	cachePrefix   = "/results/twirp/github.actions.results.api.v1.CacheService/"
	defaultBranch = "refs/heads/main"
	maxCacheKey   = 512
	maxCacheKeys  = 10
)

var cacheVersion = regexp.MustCompile(`^[0-9a-f]{64}$`)

type cacheEntry struct {
	id                 int64
	repo, ref          string
	key, version, blob string
	job                string // the job that reserved it
	size               int64
	created            time.Time
	final              bool
}

// CacheEntry is a finalized cache entry as a test sees it.
type CacheEntry struct {
	Repository, Ref, Key, Version string
	Size                          int64
}

// CacheEntries returns a repository's finalized cache entries, oldest
// first.
func (s *Server) CacheEntries(repo string) []CacheEntry {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []CacheEntry
	for _, e := range s.caches {
		if e.final && e.repo == repo {
			out = append(out, CacheEntry{Repository: e.repo, Ref: e.ref, Key: e.key, Version: e.version, Size: e.size})
		}
	}
	return out
}

type cacheScope struct {
	Scope      string    `json:"scope"`
	Permission int64JSON `json:"permission"`
}

type cacheMetadata struct {
	RepositoryID int64JSON    `json:"repository_id"`
	Scope        []cacheScope `json:"scope"`
}

// cacheRequest covers the three requests; per-method fields are checked.
type cacheRequest struct {
	Metadata    *cacheMetadata `json:"metadata"`
	Key         string         `json:"key"`
	Version     string         `json:"version"`
	RestoreKeys []string       `json:"restore_keys"`
	SizeBytes   *int64JSON     `json:"size_bytes"`
}

func (s *Server) cacheRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+cachePrefix+"{method}", s.handleCache)
}

func (s *Server) handleCache(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	if method != "CreateCacheEntry" && method != "FinalizeCacheEntryUpload" && method != "GetCacheEntryDownloadURL" {
		s.twirpFail(w, r, http.StatusNotFound, "bad_route", "no such CacheService method "+method)
		return
	}
	var req cacheRequest
	j := s.resultsPreamble(w, r, &req)
	if j == nil {
		return
	}
	if reason := checkCacheRequest(method, &req); reason != "" {
		s.twirpFail(w, r, http.StatusBadRequest, twirpInvalid, method+": "+reason)
		return
	}
	repo, ref := j.repoAndRef()
	switch method {
	case "CreateCacheEntry":
		s.createCacheEntry(w, j, repo, ref, &req)
	case "FinalizeCacheEntryUpload":
		s.finalizeCacheEntry(w, r, j, &req)
	default:
		s.cacheDownloadURL(w, repo, ref, &req)
	}
}

func checkCacheRequest(method string, req *cacheRequest) string {
	switch {
	case method != "GetCacheEntryDownloadURL" && req.RestoreKeys != nil:
		return "unknown field \"restore_keys\""
	case method != "FinalizeCacheEntryUpload" && req.SizeBytes != nil:
		return "unknown field \"size_bytes\""
	case method == "FinalizeCacheEntryUpload" && (req.SizeBytes == nil || *req.SizeBytes <= 0):
		return "size_bytes must be positive"
	case !cacheVersion.MatchString(req.Version):
		return fmt.Sprintf("version %q is not a SHA-256 hex digest", req.Version)
	case len(req.RestoreKeys)+1 > maxCacheKeys:
		return fmt.Sprintf("%d keys, at most %d", len(req.RestoreKeys)+1, maxCacheKeys)
	}
	for _, k := range append([]string{req.Key}, req.RestoreKeys...) {
		if k == "" || len(k) > maxCacheKey || strings.Contains(k, ",") {
			return fmt.Sprintf("key %q: 1 to %d characters without commas", k, maxCacheKey)
		}
	}
	return ""
}

// repoAndRef is the job's cache scope: github.repository and github.ref.
func (j *Job) repoAndRef() (string, string) {
	repo, ref := defaultScope, defaultBranch
	if gh, ok := j.spec.ContextData["github"].(map[string]any); ok {
		if v, ok := gh["repository"].(string); ok && v != "" {
			repo = v
		}
		if v, ok := gh["ref"].(string); ok && v != "" {
			ref = v
		}
	}
	return repo, ref
}

func (s *Server) createCacheEntry(w http.ResponseWriter, j *Job, repo, ref string, req *cacheRequest) {
	s.mu.Lock()
	for _, e := range s.caches {
		if e.repo == repo && e.ref == ref && e.key == req.Key && e.version == req.Version {
			s.mu.Unlock()
			s.twirpRefuse(w, http.StatusConflict, "already_exists", "cache entry with the same key, version, and scope already exists")
			return
		}
	}
	s.nextID++
	e := &cacheEntry{id: s.nextID, repo: repo, ref: ref, key: req.Key, version: req.Version, job: j.jobID, created: time.Now()}
	e.blob = fmt.Sprintf("caches/%d", e.id)
	s.caches = append(s.caches, e)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "signed_upload_url": s.signedBlobURLFor(e.blob, "cw"), "message": ""})
}

func (s *Server) finalizeCacheEntry(w http.ResponseWriter, r *http.Request, j *Job, req *cacheRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var e *cacheEntry
	for _, c := range s.caches {
		if c.job == j.jobID && c.key == req.Key && c.version == req.Version && !c.final {
			e = c
		}
	}
	if e == nil {
		s.twirpFailLocked(w, r, http.StatusNotFound, twirpNotFound, "FinalizeCacheEntryUpload: this job reserved no entry "+req.Key)
		return
	}
	b := s.blobs[e.blob]
	if b == nil || b.typ != "BlockBlob" || int64(len(b.data)) != int64(*req.SizeBytes) {
		s.twirpFailLocked(w, r, http.StatusBadRequest, twirpPrecondition,
			fmt.Sprintf("FinalizeCacheEntryUpload: size_bytes %d does not match the committed blob", *req.SizeBytes))
		return
	}
	e.final, e.size = true, int64(len(b.data))
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "entry_id": strconv.FormatInt(e.id, 10), "message": ""})
}

// cacheDownloadURL matches as GitHub does: the exact key, else the newest
// entry starting with each restore key in turn; same version, and of the
// job's ref or the default branch, the job's own ref first.
func (s *Server) cacheDownloadURL(w http.ResponseWriter, repo, ref string, req *cacheRequest) {
	s.mu.Lock()
	var visible []*cacheEntry
	for _, e := range s.caches {
		if e.final && e.repo == repo && e.version == req.Version && (e.ref == ref || e.ref == defaultBranch) {
			visible = append(visible, e)
		}
	}
	s.mu.Unlock()
	sort.SliceStable(visible, func(a, b int) bool {
		if (visible[a].ref == ref) != (visible[b].ref == ref) {
			return visible[a].ref == ref
		}
		return visible[a].created.After(visible[b].created)
	})
	match := func(e *cacheEntry, k string, exact bool) bool {
		return e.key == k || (!exact && strings.HasPrefix(e.key, k))
	}
	for i, k := range append([]string{req.Key}, req.RestoreKeys...) {
		for _, e := range visible {
			if match(e, k, i == 0) {
				writeJSON(w, http.StatusOK, map[string]any{"ok": true, "signed_download_url": s.signedBlobURLFor(e.blob, "r"), "matched_key": e.key})
				return
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": false, "signed_download_url": "", "matched_key": ""})
}
