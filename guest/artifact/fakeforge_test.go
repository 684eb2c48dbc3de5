package artifact

// A strict in-test ArtifactService that behaves as Gitea 1.26.1's
// routers/api/actions/artifactsv4.go does where a client can tell:
// Bearer token on Twirp calls, run id checked against the token, blocks
// stored per block id with their Content-Length, a block list required
// for more than one block, size and sha256 checked at finalize, only
// finalized artifacts listed and downloadable, signed URLs checked. On top
// it fails the test when the client sends what a careful client must not
// (unknown fields, the token to a signed URL, a block without length).

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

const fakeRunID, fakeJobID = "21", "49"

// fakeToken is a JWT-shaped runtime token with Gitea's scp claim.
func fakeToken(scp string) string {
	enc := base64.RawURLEncoding
	claims, _ := json.Marshal(map[string]any{"scp": scp, "TaskID": 75})
	return enc.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + enc.EncodeToString(claims) + ".c2ln"
}

type fakeArtifact struct {
	id        int64
	name      string
	blocks    map[string]string // block id -> file
	blockList []string
	final     string // merged zip file once finalized
	size      int64
	created   time.Time
	expires   string
}

type fakeForge struct {
	t      *testing.T
	srv    *httptest.Server
	token  string
	dir    string
	secret []byte

	mu         sync.Mutex
	nextID     int64
	arts       map[string]*fakeArtifact
	failBlocks int // the next failBlocks block PUTs answer 503
	blockPuts  int
	maxBlock   int64
	sizeLie    int64 // added to the size ListArtifacts reports
	rewriteURL func(string) string
}

func newFakeForge(t *testing.T) *fakeForge {
	f := &fakeForge{t: t, token: fakeToken("Actions.Results:" + fakeRunID + ":" + fakeJobID),
		dir: t.TempDir(), secret: []byte("s3cret"), arts: map[string]*fakeArtifact{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/twirp/github.actions.results.api.v1.ArtifactService/{method}", f.twirp)
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeForge) client(t *testing.T, opts ...Option) *Client {
	opts = append([]Option{WithRetries(3, time.Millisecond), WithHTTPClient(f.srv.Client())}, opts...)
	c, err := New(f.srv.URL+"/", f.token, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func twirpError(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"code": "internal", "msg": msg})
}

func (f *fakeForge) twirp(w http.ResponseWriter, r *http.Request) {
	switch r.PathValue("method") {
	case "UploadArtifact":
		f.upload(w, r)
		return
	case "DownloadArtifact":
		f.download(w, r)
		return
	}
	if r.Method != http.MethodPost {
		twirpError(w, http.StatusMethodNotAllowed, "POST only")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		twirpError(w, http.StatusUnauthorized, "Bad authorization header")
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		f.t.Errorf("twirp call with Content-Type %q", ct)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	switch m := r.PathValue("method"); m {
	case "CreateArtifact":
		f.create(w, r)
	case "FinalizeArtifact":
		f.finalize(w, r)
	case "ListArtifacts":
		f.list(w, r)
	case "GetSignedArtifactURL":
		f.signedURL(w, r)
	default:
		twirpError(w, http.StatusNotFound, "no method "+m)
	}
}

// decode reads a request strictly and checks its run id, as Gitea's
// validateRunIDV4 does.
func (f *fakeForge) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		f.t.Errorf("%s: request does not decode strictly: %v", r.URL.Path, err)
		twirpError(w, http.StatusInternalServerError, "Error decode request body")
		return false
	}
	var ids struct {
		Run string `json:"workflow_run_backend_id"`
		Job string `json:"workflow_job_run_backend_id"`
	}
	b, _ := json.Marshal(v)
	_ = json.Unmarshal(b, &ids)
	if ids.Run != fakeRunID || ids.Job != fakeJobID {
		twirpError(w, http.StatusBadRequest, "run-id does not match")
		return false
	}
	return true
}

func (f *fakeForge) sign(endpoint, name string, id int64, expires string) string {
	mac := hmac.New(sha256.New, f.secret)
	fmt.Fprint(mac, endpoint, expires, name, id)
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

func (f *fakeForge) signedURL(w http.ResponseWriter, r *http.Request) {
	var req urlRequest
	if !f.decode(w, r, &req) {
		return
	}
	a := f.arts[req.Name]
	if a == nil || a.final == "" {
		twirpError(w, http.StatusNotFound, "Error artifact not found")
		return
	}
	u := f.buildURL("DownloadArtifact", a)
	if f.rewriteURL != nil {
		u = f.rewriteURL(u)
	}
	writeProto(w, map[string]any{"signedUrl": u})
}

func (f *fakeForge) buildURL(endpoint string, a *fakeArtifact) string {
	expires := time.Now().Add(time.Hour).Format("2006-01-02 15:04:05.999999999 -0700 MST")
	return f.srv.URL + "/twirp/github.actions.results.api.v1.ArtifactService/" + endpoint +
		"?sig=" + f.sign(endpoint, a.name, a.id, expires) + "&expires=" + url.QueryEscape(expires) +
		"&artifactName=" + url.QueryEscape(a.name) + "&taskID=75&artifactID=" + strconv.FormatInt(a.id, 10)
}

// verify checks a signed URL; it returns the artifact it names.
func (f *fakeForge) verify(w http.ResponseWriter, r *http.Request, endpoint string) *fakeArtifact {
	if r.Header.Get("Authorization") != "" {
		f.t.Errorf("%s: the client sent an Authorization header to a signed URL", endpoint)
	}
	q := r.URL.Query()
	id, _ := strconv.ParseInt(q.Get("artifactID"), 10, 64)
	if !hmac.Equal([]byte(q.Get("sig")), []byte(f.sign(endpoint, q.Get("artifactName"), id, q.Get("expires")))) {
		twirpError(w, http.StatusUnauthorized, "Error unauthorized")
		return nil
	}
	a := f.arts[q.Get("artifactName")]
	if a == nil || a.id != id {
		twirpError(w, http.StatusNotFound, "Error artifact not found")
		return nil
	}
	return a
}

func (f *fakeForge) create(w http.ResponseWriter, r *http.Request) {
	var req struct {
		createRequest
		MimeType *string `json:"mime_type"`
	}
	if !f.decode(w, r, &req) {
		return
	}
	if req.Version != 4 || req.Name == "" {
		twirpError(w, http.StatusBadRequest, "bad request")
		return
	}
	if req.ExpiresAt != nil {
		if _, err := time.Parse(time.RFC3339, *req.ExpiresAt); err != nil {
			f.t.Errorf("expires_at %q is not RFC 3339", *req.ExpiresAt)
		}
	}
	f.nextID++
	a := &fakeArtifact{id: f.nextID, name: req.Name, blocks: map[string]string{}, created: time.Now().UTC()}
	if req.ExpiresAt != nil {
		a.expires = *req.ExpiresAt
	}
	f.arts[req.Name] = a
	writeProto(w, map[string]any{"ok": true, "signedUploadUrl": f.buildURL("UploadArtifact", a)})
}

func (f *fakeForge) upload(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodPut {
		twirpError(w, http.StatusMethodNotAllowed, "PUT only")
		return
	}
	a := f.verify(w, r, "UploadArtifact")
	if a == nil {
		return
	}
	switch q := r.URL.Query(); q.Get("comp") {
	case "block", "appendBlock":
		f.block(w, r, a, q.Get("blockid"))
	case "blocklist":
		var bl blockList
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

func (f *fakeForge) block(w http.ResponseWriter, r *http.Request, a *fakeArtifact, id string) {
	f.blockPuts++
	if id == "" || r.ContentLength <= 0 {
		f.t.Errorf("block PUT without block id or Content-Length (%q, %d)", id, r.ContentLength)
	}
	if f.failBlocks > 0 {
		f.failBlocks--
		_, _ = io.Copy(io.Discard, r.Body)
		twirpError(w, http.StatusServiceUnavailable, "try again")
		return
	}
	p := filepath.Join(f.dir, fmt.Sprintf("block-%d-%s", a.id, base64.URLEncoding.EncodeToString([]byte(id))))
	out, err := os.Create(p)
	if err != nil {
		f.t.Fatal(err)
	}
	n, err := io.Copy(out, r.Body)
	out.Close()
	if err != nil || n != r.ContentLength {
		twirpError(w, http.StatusInternalServerError, "Error uploading block blob")
		return
	}
	f.maxBlock = max(f.maxBlock, n)
	a.blocks[id] = p
	w.WriteHeader(http.StatusCreated)
}

func (f *fakeForge) finalize(w http.ResponseWriter, r *http.Request) {
	var req struct {
		RunID string    `json:"workflow_run_backend_id"`
		JobID string    `json:"workflow_job_run_backend_id"`
		Name  string    `json:"name"`
		Size  int64JSON `json:"size"`
		Hash  string    `json:"hash"`
	}
	if !f.decode(w, r, &req) {
		return
	}
	a := f.arts[req.Name]
	if a == nil {
		twirpError(w, http.StatusNotFound, "Error artifact not found")
		return
	}
	order := a.blockList
	if order == nil && len(a.blocks) > 1 {
		twirpError(w, http.StatusInternalServerError, "blockmap is required for chunks > 1")
		return
	}
	merged := filepath.Join(f.dir, fmt.Sprintf("artifact-%d.zip", a.id))
	out, err := os.Create(merged)
	if err != nil {
		f.t.Fatal(err)
	}
	defer out.Close()
	h := sha256.New()
	var size int64
	for _, id := range order {
		p, ok := a.blocks[id]
		if !ok {
			twirpError(w, http.StatusInternalServerError, "missing chunk "+id)
			return
		}
		in, err := os.Open(p)
		if err != nil {
			f.t.Fatal(err)
		}
		n, _ := io.Copy(io.MultiWriter(out, h), in)
		in.Close()
		size += n
	}
	if size != int64(req.Size) {
		twirpError(w, http.StatusInternalServerError, "Error merge chunks size mismatch")
		return
	}
	if req.Hash != "sha256:"+hex.EncodeToString(h.Sum(nil)) {
		twirpError(w, http.StatusInternalServerError, "Error merge chunks")
		return
	}
	a.final, a.size = merged, size
	writeProto(w, map[string]any{"ok": true, "artifactId": strconv.FormatInt(a.id, 10)})
}

func (f *fakeForge) list(w http.ResponseWriter, r *http.Request) {
	var req struct {
		listRequest
		IDFilter *int64JSON `json:"id_filter"`
	}
	if !f.decode(w, r, &req) {
		return
	}
	list := []map[string]any{}
	for _, a := range f.arts {
		if a.final == "" || req.NameFilter != nil && *req.NameFilter != a.name {
			continue
		}
		list = append(list, map[string]any{"workflowRunBackendId": fakeRunID, "workflowJobRunBackendId": fakeJobID,
			"databaseId": strconv.FormatInt(a.id, 10), "name": a.name, "size": strconv.FormatInt(a.size+f.sizeLie, 10),
			"createdAt": a.created.Format(time.RFC3339Nano)})
	}
	writeProto(w, map[string]any{"artifacts": list})
}

func (f *fakeForge) download(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.Method != http.MethodGet {
		twirpError(w, http.StatusMethodNotAllowed, "GET only")
		return
	}
	a := f.verify(w, r, "DownloadArtifact")
	if a == nil {
		return
	}
	w.Header().Set("Content-Type", "application/zip")
	http.ServeFile(w, r, a.final)
}

func writeProto(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json;charset=utf-8")
	_ = json.NewEncoder(w).Encode(v)
}
