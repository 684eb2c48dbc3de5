package nomad

import (
	"cmp"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// fakeNomad speaks the few /v1 endpoints the layer uses, answering with
// the api package's own types so the JSON has Nomad's shapes, and counts
// the requests it gets.
type fakeNomad struct {
	t  *testing.T
	mu sync.Mutex

	jobs     map[string]*api.Job
	vars     map[string]bool                      // Variable paths that exist
	varTimes map[string]int64                     // their create times (unix nano), zero unless set
	allocs   map[string][]*api.AllocationListStub // by job id
	requests []string                             // "GET /v1/job/{id}/allocations", …
	streams  map[string]func(w http.ResponseWriter, r *http.Request, offset int64)
	files    map[string]func() ([]byte, bool) // stat, readat: an allocation's events file as it is now, and whether it is there
}

func newFakeNomad(t *testing.T) (*fakeNomad, *Client) {
	f := &fakeNomad{t: t, jobs: map[string]*api.Job{}, vars: map[string]bool{}, varTimes: map[string]int64{}, allocs: map[string][]*api.AllocationListStub{},
		streams: map[string]func(http.ResponseWriter, *http.Request, int64){}, files: map[string]func() ([]byte, bool){}}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	c, err := api.NewClient(&api.Config{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	return f, &Client{API: c, Log: hclog.NewNullLogger()}
}

// route names a request by its endpoint, ids replaced by {id}.
func route(r *http.Request) (name string, id string) {
	parts := strings.Split(strings.TrimPrefix(r.URL.EscapedPath(), "/v1/"), "/")
	at := 1 // job/{id}/…, node/{id}
	switch parts[0] {
	case "client":
		at = 3 // client/fs/stream/{alloc}
	case "var": // var/{path with slashes}
		parts = []string{"var", strings.Join(parts[1:], "/")}
	}
	if len(parts) > at {
		id, _ = url.PathUnescape(parts[at])
		parts[at] = "{id}"
	}
	return r.Method + " /v1/" + strings.Join(parts, "/"), id
}

func (f *fakeNomad) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name, id := route(r)
	f.mu.Lock()
	f.requests = append(f.requests, name)
	f.mu.Unlock()
	switch name {
	case "GET /v1/job/{id}":
		f.reply(w, f.job(id))
	case "GET /v1/job/{id}/allocations":
		f.mu.Lock()
		stubs := append([]*api.AllocationListStub{}, f.allocs[id]...)
		f.mu.Unlock()
		f.reply(w, stubs)
	case "DELETE /v1/job/{id}":
		f.stop(id)
		f.reply(w, api.JobDeregisterResponse{EvalID: "eval-stop"})
	case "GET /v1/jobs":
		f.reply(w, f.list(r.URL.Query().Get("meta") == "true"))
	case "GET /v1/vars":
		f.listVars(w, r.URL.Query().Get("prefix"))
	case "GET /v1/var/{id}":
		f.peek(w, id)
	case "PUT /v1/var/{id}":
		f.setVar(id, true)
		f.reply(w, api.Variable{Path: id})
	case "DELETE /v1/var/{id}":
		f.setVar(id, false)
		w.WriteHeader(http.StatusNoContent)
	case "PUT /v1/job/{id}/dispatch":
		f.dispatch(w, r, id)
	case "GET /v1/client/fs/stream/{id}":
		f.stream(w, r, id)
	case "GET /v1/client/fs/readat/{id}":
		f.readAt(w, r, id)
	case "GET /v1/client/fs/stat/{id}":
		f.stat(w, r, id)
	default: // GET /v1/node/{id} among others: the fs API then goes through the server
		http.Error(w, "no such endpoint in the fake", http.StatusNotFound)
	}
}

// reply writes v as JSON, or 404 for a nil *api.Job.
func (f *fakeNomad) reply(w http.ResponseWriter, v any) {
	if j, ok := v.(*api.Job); ok && j == nil {
		http.Error(w, "job not found", http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Nomad-Index", "7")
	json.NewEncoder(w).Encode(v)
}

func (f *fakeNomad) job(id string) *api.Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j := f.jobs[id]; j != nil {
		c := *j
		return &c
	}
	return nil
}

// list is GET /v1/jobs: job stubs, with meta only when asked for.
func (f *fakeNomad) list(meta bool) []*api.JobListStub {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*api.JobListStub
	for _, j := range f.jobs {
		s := &api.JobListStub{ID: *j.ID, ParentID: deref(j.ParentID), Status: deref(j.Status), Stop: deref(j.Stop),
			SubmitTime: deref(j.SubmitTime), ParameterizedJob: j.ParameterizedJob != nil}
		if meta {
			s.Meta = j.Meta
		}
		out = append(out, s)
	}
	return out
}

func (f *fakeNomad) peek(w http.ResponseWriter, path string) {
	f.mu.Lock()
	ok := f.vars[path]
	f.mu.Unlock()
	if !ok {
		http.Error(w, "variable not found", http.StatusNotFound)
		return
	}
	f.reply(w, api.Variable{Path: path, Items: api.VariableItems{"_": ""}})
}

func (f *fakeNomad) listVars(w http.ResponseWriter, prefix string) {
	f.mu.Lock()
	var out []*api.VariableMetadata
	for p := range f.vars {
		if strings.HasPrefix(p, prefix) {
			out = append(out, &api.VariableMetadata{Path: p, CreateTime: f.varTimes[p]})
		}
	}
	f.mu.Unlock()
	f.reply(w, out)
}

func (f *fakeNomad) setVar(path string, exists bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if exists {
		f.vars[path] = true
	} else {
		delete(f.vars, path)
	}
}

// dispatch is PUT /v1/job/{parent}/dispatch: a queued child job.
func (f *fakeNomad) dispatch(w http.ResponseWriter, r *http.Request, parent string) {
	var req api.JobDispatchRequest
	json.NewDecoder(r.Body).Decode(&req)
	if f.job(parent) == nil {
		http.Error(w, "parent job not found", http.StatusNotFound)
		return
	}
	id := fmt.Sprintf("%s/dispatch-1700000000-%s", parent, req.IdPrefixTemplate)
	f.mu.Lock()
	f.jobs[id] = &api.Job{ID: ptr(id), ParentID: ptr(parent), Status: ptr("pending"), Stop: ptr(false),
		SubmitTime: ptr(int64(1_700_000_000_000_000_000)), Meta: req.Meta}
	f.mu.Unlock()
	f.reply(w, api.JobDispatchResponse{DispatchedJobID: id, EvalID: "eval-1"})
}

func (f *fakeNomad) stop(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if j := f.jobs[id]; j != nil {
		j.Stop = ptr(true)
		if len(f.allocs[id]) == 0 {
			j.Status = ptr("dead")
		}
	}
}

func (f *fakeNomad) stream(w http.ResponseWriter, r *http.Request, allocID string) {
	f.mu.Lock()
	serve := f.streams[allocID]
	f.mu.Unlock()
	q := r.URL.Query()
	if serve == nil || q.Get("origin") != api.OriginStart || q.Get("path") != contract.EventsPath(contract.TaskName) {
		http.Error(w, "no such file", http.StatusNotFound)
		return
	}
	offset, _ := strconv.ParseInt(q.Get("offset"), 10, 64)
	serve(w, r, offset)
}

// readAt answers as Nomad 1.6's read-at API does: the plain bytes from
// offset, at most limit of them (all when limit is 0 or less). Its
// errors come as the body of a success: the agent streams the answer
// through a pipe and has sent its status before the error is known (a
// missing file read this way, from a real agent, in e2e's warm bench).
func (f *fakeNomad) readAt(w http.ResponseWriter, r *http.Request, allocID string) {
	f.mu.Lock()
	file := f.files[allocID]
	f.mu.Unlock()
	q := r.URL.Query()
	data, there := fileNow(file)
	if !there || q.Get("path") != contract.EventsPath(contract.TaskName) {
		w.Write([]byte("stat /nomad/alloc/" + allocID + "/" + q.Get("path") + ": no such file or directory"))
		return
	}
	offset, err1 := strconv.ParseInt(q.Get("offset"), 10, 64)
	limit, err2 := strconv.ParseInt(cmp.Or(q.Get("limit"), "0"), 10, 64)
	if err1 != nil || err2 != nil || offset < 0 || offset > int64(len(data)) {
		http.Error(w, "bad offset or limit", http.StatusBadRequest)
		return
	}
	data = data[offset:]
	if limit > 0 && int64(len(data)) > limit {
		data = data[:limit]
	}
	w.Header().Set("Content-Type", "text/plain")
	w.Write(data)
}

// stat answers as Nomad's stat API does: the file's AllocFileInfo, or an
// error status for a file that is not there.
func (f *fakeNomad) stat(w http.ResponseWriter, r *http.Request, allocID string) {
	f.mu.Lock()
	file := f.files[allocID]
	f.mu.Unlock()
	p := r.URL.Query().Get("path")
	data, there := fileNow(file)
	if !there || p != contract.EventsPath(contract.TaskName) {
		http.Error(w, "stat /nomad/alloc/"+allocID+"/"+p+": no such file or directory", http.StatusInternalServerError)
		return
	}
	f.reply(w, api.AllocFileInfo{Name: "events.jsonl", Size: int64(len(data)), FileMode: "-rw-r--r--", ModTime: time.Now()})
}

func fileNow(file func() ([]byte, bool)) ([]byte, bool) {
	if file == nil {
		return nil, false
	}
	return file()
}

// dispatched adds a queued dispatched job.
func (f *fakeNomad) dispatched(id string, submit int64) *Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[id] = &api.Job{ID: ptr(id), ParentID: ptr("solstice-solstice-test"), Type: ptr("batch"),
		Status: ptr("pending"), Stop: ptr(false), SubmitTime: ptr(submit)}
	return &Job{ID: id, Label: "solstice-test"}
}

// setAlloc replaces the job's one allocation and sets the job's status.
func (f *fakeNomad) setAlloc(jobID, jobStatus string, a *api.AllocationListStub) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.jobs[jobID].Status = ptr(jobStatus)
	a.JobID = jobID
	f.allocs[jobID] = []*api.AllocationListStub{a}
}

func (f *fakeNomad) purge(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.jobs, id)
}

// take returns the requests since the last take.
func (f *fakeNomad) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}
