package githubfake

// Artifact service v4 (twirp, JSON) on the results service. Checked
// against actions/toolkit packages/artifact:
//   src/generated/results/api/v1/artifact.ts (CreateArtifactRequest:
//     workflow_run_backend_id, workflow_job_run_backend_id, name,
//     expires_at, version, mime_type; FinalizeArtifactRequest: ids, name,
//     size (int64), hash; ListArtifactsRequest: ids, name_filter,
//     id_filter; ListArtifactsResponse.MonolithArtifact:
//     workflow_run_backend_id, workflow_job_run_backend_id, database_id,
//     name, size, created_at, digest; GetSignedArtifactURLRequest: ids,
//     name; responses ok/signed_upload_url, ok/artifact_id, signed_url),
//   src/internal/shared/artifact-twirp-client.ts (POST, Bearer
//     ACTIONS_RUNTIME_TOKEN, Content-Type application/json),
//   src/internal/shared/util.ts getBackendIdsFromToken (the ids are the
//     token's scp "Actions.Results:RUN:JOB"),
//   src/internal/upload/path-and-artifact-name-validation.ts (names
//     without " : < > | * ? \r \n \ /).
// Answers use the proto names and carry every field, as a twirp server
// with default options writes them. Uploads go to Azure block blobs
// (blob.go): Put Block + Put Block List, or one Put Blob.

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

const artifactPrefix = "/results/twirp/github.actions.results.api.v1.ArtifactService/"

// artifact is one artifact of a workflow run.
type artifact struct {
	id        int64
	run, job  string
	name      string
	blob      string // blob name
	size      int64
	digest    string // "sha256:HEX", set at finalize
	expiresAt string
	created   time.Time
	final     bool
}

// ArtifactInfo is a finalized artifact as a test sees it.
type ArtifactInfo struct {
	ID     int64
	Name   string
	Size   int64
	Digest string // sha256:HEX of Data
	Data   []byte // the zip
}

// Artifacts returns the finalized artifacts of a run (a job's PlanID).
func (s *Server) Artifacts(runID string) []ArtifactInfo {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ArtifactInfo
	for _, a := range s.artifacts[runID] {
		if a.final {
			out = append(out, ArtifactInfo{ID: a.id, Name: a.name, Size: a.size, Digest: a.digest,
				Data: append([]byte(nil), s.blobs[a.blob].data...)})
		}
	}
	return out
}

// artifactRequest covers every ArtifactService request; which optional
// fields a method allows is checked per method.
type artifactRequest struct {
	WorkflowRunBackendID    string     `json:"workflow_run_backend_id"`
	WorkflowJobRunBackendID string     `json:"workflow_job_run_backend_id"`
	Name                    string     `json:"name"`
	ExpiresAt               *string    `json:"expires_at"`
	Version                 *int       `json:"version"`
	MimeType                *string    `json:"mime_type"`
	Size                    *int64JSON `json:"size"`
	Hash                    *string    `json:"hash"`
	NameFilter              *string    `json:"name_filter"`
	IDFilter                *int64JSON `json:"id_filter"`
}

// artifactFields are the optional fields each method takes.
var artifactFields = map[string][]string{
	"CreateArtifact":       {"expires_at", "version", "mime_type"},
	"FinalizeArtifact":     {"size", "hash"},
	"ListArtifacts":        {"name_filter", "id_filter"},
	"GetSignedArtifactURL": {},
}

func (s *Server) artifactRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST "+artifactPrefix+"{method}", s.handleArtifact)
}

func (s *Server) handleArtifact(w http.ResponseWriter, r *http.Request) {
	method := r.PathValue("method")
	allowed, ok := artifactFields[method]
	if !ok {
		s.twirpFail(w, r, http.StatusNotFound, "bad_route", "no such ArtifactService method "+method)
		return
	}
	var req artifactRequest
	j := s.resultsPreamble(w, r, &req)
	if j == nil {
		return
	}
	if reason := checkArtifactRequest(j, method, allowed, &req); reason != "" {
		s.twirpFail(w, r, http.StatusBadRequest, twirpInvalid, method+": "+reason)
		return
	}
	switch method {
	case "CreateArtifact":
		s.createArtifact(w, r, j, &req)
	case "FinalizeArtifact":
		s.finalizeArtifact(w, r, j, &req)
	case "ListArtifacts":
		s.listArtifacts(w, j, &req)
	case "GetSignedArtifactURL":
		s.signedArtifactURL(w, j, &req)
	}
}

func checkArtifactRequest(j *Job, method string, allowed []string, req *artifactRequest) string {
	set := map[string]bool{"expires_at": req.ExpiresAt != nil, "version": req.Version != nil, "mime_type": req.MimeType != nil,
		"size": req.Size != nil, "hash": req.Hash != nil, "name_filter": req.NameFilter != nil, "id_filter": req.IDFilter != nil}
	for f, isSet := range set {
		if isSet && !contains(allowed, f) {
			return fmt.Sprintf("unknown field %q", f)
		}
	}
	switch {
	case req.WorkflowRunBackendID != j.planID || req.WorkflowJobRunBackendID != j.jobID:
		return "workflow_run_backend_id/workflow_job_run_backend_id are not the token's"
	case method != "ListArtifacts" && !validArtifactName(req.Name):
		return fmt.Sprintf("name %q is empty or has one of \" : < > | * ? \\r \\n \\ /", req.Name)
	case method == "ListArtifacts" && req.Name != "":
		return "unknown field \"name\""
	case method == "CreateArtifact" && (req.Version == nil || *req.Version != 4):
		return "version must be 4"
	case method == "FinalizeArtifact" && (req.Size == nil || *req.Size < 0):
		return "size is missing"
	case method == "FinalizeArtifact" && req.Hash != nil && !validDigest(*req.Hash):
		return fmt.Sprintf("hash %q is not sha256:<64 hex>", *req.Hash)
	}
	if req.ExpiresAt != nil {
		if _, err := time.Parse(time.RFC3339Nano, *req.ExpiresAt); err != nil {
			return fmt.Sprintf("expires_at %q is not an RFC 3339 timestamp", *req.ExpiresAt)
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}

func validArtifactName(n string) bool {
	return n != "" && len(n) <= 256 && !strings.ContainsAny(n, "\":<>|*?\r\n\\/")
}

func validDigest(h string) bool {
	hexPart, ok := strings.CutPrefix(h, "sha256:")
	_, err := hex.DecodeString(hexPart)
	return ok && len(hexPart) == 64 && err == nil
}

func (s *Server) createArtifact(w http.ResponseWriter, r *http.Request, j *Job, req *artifactRequest) {
	s.mu.Lock()
	for _, a := range s.artifacts[j.planID] {
		if a.name == req.Name && a.final {
			s.mu.Unlock()
			s.twirpRefuse(w, http.StatusConflict, "already_exists", "an artifact with this name already exists on the workflow run")
			return
		}
	}
	s.nextID++
	a := &artifact{id: s.nextID, run: j.planID, job: j.jobID, name: req.Name, created: time.Now().UTC(), expiresAt: deref(req.ExpiresAt)}
	a.blob = fmt.Sprintf("artifacts/%s/%d", j.planID, a.id)
	s.artifacts[j.planID] = append(s.artifacts[j.planID], a)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "signed_upload_url": s.signedBlobURLFor(a.blob, "cw")})
}

func (s *Server) finalizeArtifact(w http.ResponseWriter, r *http.Request, j *Job, req *artifactRequest) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var a *artifact
	for _, c := range s.artifacts[j.planID] {
		if c.name == req.Name && c.job == j.jobID && !c.final {
			a = c
		}
	}
	if a == nil {
		s.twirpFailLocked(w, r, http.StatusNotFound, twirpNotFound, "FinalizeArtifact: no artifact "+req.Name+" was created by this job")
		return
	}
	b := s.blobs[a.blob]
	if b == nil || b.typ != "BlockBlob" {
		s.twirpFailLocked(w, r, http.StatusBadRequest, twirpPrecondition, "FinalizeArtifact: nothing was committed to the upload URL")
		return
	}
	sum := sha256.Sum256(b.data)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if int64(*req.Size) != int64(len(b.data)) || (req.Hash != nil && *req.Hash != digest) {
		s.twirpFailLocked(w, r, http.StatusBadRequest, twirpPrecondition,
			fmt.Sprintf("FinalizeArtifact: size %d / hash %s, the blob has %d bytes / %s", *req.Size, deref(req.Hash), len(b.data), digest))
		return
	}
	a.final, a.size, a.digest = true, int64(len(b.data)), digest
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "artifact_id": strconv.FormatInt(a.id, 10)})
}

// listArtifacts lists the run's finalized artifacts, of every job.
func (s *Server) listArtifacts(w http.ResponseWriter, j *Job, req *artifactRequest) {
	s.mu.Lock()
	var list []map[string]any
	for _, a := range s.artifacts[j.planID] {
		if !a.final || (req.NameFilter != nil && *req.NameFilter != a.name) || (req.IDFilter != nil && int64(*req.IDFilter) != a.id) {
			continue
		}
		list = append(list, map[string]any{
			"workflow_run_backend_id": a.run, "workflow_job_run_backend_id": a.job,
			"database_id": strconv.FormatInt(a.id, 10), "name": a.name, "size": strconv.FormatInt(a.size, 10),
			"created_at": a.created.Format(time.RFC3339Nano), "digest": a.digest,
		})
	}
	s.mu.Unlock()
	sort.Slice(list, func(i, k int) bool { return list[i]["database_id"].(string) < list[k]["database_id"].(string) })
	if list == nil {
		list = []map[string]any{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"artifacts": list})
}

func (s *Server) signedArtifactURL(w http.ResponseWriter, j *Job, req *artifactRequest) {
	s.mu.Lock()
	var a *artifact
	for _, c := range s.artifacts[j.planID] {
		if c.name == req.Name && c.final {
			a = c
		}
	}
	s.mu.Unlock()
	if a == nil {
		s.twirpRefuse(w, http.StatusNotFound, twirpNotFound, "artifact not found: "+req.Name)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"signed_url": s.signedBlobURLFor(a.blob, "r")})
}

// twirpRefuse answers a well-formed request with a twirp error that is
// the service's verdict, not a client mistake (an existing name, a
// missing artifact); it is not recorded as a rejection.
func (s *Server) twirpRefuse(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]string{"code": code, "msg": msg})
}

func (s *Server) twirpFailLocked(w http.ResponseWriter, r *http.Request, status int, code, msg string) {
	s.recordLocked(r, status, "results: "+msg)
	writeJSON(w, status, map[string]string{"code": code, "msg": msg})
}
