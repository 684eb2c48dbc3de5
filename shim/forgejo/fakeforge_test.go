package forgejo

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"code.gitea.io/actions-proto-go/runner/v1/runnerv1connect"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"
)

// fakeForge is a runner service that behaves like Gitea 1.26 where it
// matters: auth headers on every call but Register, failures as gRPC
// status errors Connect reports as "unknown" (HTTP 500), tasks_version,
// the UpdateLog ack/gap/de-dup rules, no_more ignored with no rows, and
// cancellation only through the UpdateTask response.
type fakeForge struct {
	t        *testing.T
	srv      *httptest.Server
	regToken string

	mu       sync.Mutex
	runners  map[string]*fakeRunner // by uuid
	nextID   int64
	version  int64
	queue    []*fakeTask
	tasks    map[int64]*fakeTask
	down     bool // an outage: a proxy answers 502 to everything
	calls    map[string]int
	fetched  []int64 // tasks_version of every FetchTask
	picks    int     // FetchTask calls that looked for a task
	dropLogs int     // UpdateLog calls to store but answer with an error
}

type fakeRunner struct {
	id                  int64
	uuid, token, name   string
	labels              []string
	version             string
	registeredWithToken string
}

type fakeTask struct {
	proto    *runnerv1.Task
	runsOn   []string
	runner   string
	result   runnerv1.Result
	stopped  time.Time
	rows     []*runnerv1.LogRow
	archived bool
	steps    map[int64]*runnerv1.StepState
	outputs  map[string]string
	beats    int
	received int // rows received in UpdateLog calls, resends included
	assigned time.Time
	finished time.Time
}

func newFakeForge(t *testing.T) *fakeForge {
	f := &fakeForge{t: t, regToken: "REGTOKEN", runners: map[string]*fakeRunner{}, tasks: map[int64]*fakeTask{}, calls: map[string]int{}, nextID: 100}
	path, h := runnerv1connect.NewRunnerServiceHandler(f, connect.WithInterceptors(connect.UnaryInterceptorFunc(f.auth)))
	mux := http.NewServeMux()
	mux.Handle(APIPath+path, http.StripPrefix(APIPath, h))
	f.srv = httptest.NewUnstartedServer(f.outage(mux))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.srv.Listener = l
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeForge) URL() string { return f.srv.URL + "/" }

// grpcError is how Gitea's gRPC status errors reach a Connect client.
func grpcError(code, msg string) error {
	return fmt.Errorf("rpc error: code = %s desc = %s", code, msg)
}

func (f *fakeForge) outage(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		down := f.down
		f.calls[r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]]++
		f.mu.Unlock()
		if down {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			fmt.Fprint(w, "<html>502 Bad Gateway</html>")
			return
		}
		next.ServeHTTP(w, r)
	})
}

type runnerKey struct{}

func (f *fakeForge) auth(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		if strings.HasSuffix(req.Spec().Procedure, "/Register") {
			return next(ctx, req)
		}
		f.mu.Lock()
		r := f.runners[req.Header().Get(HeaderUUID)]
		f.mu.Unlock()
		if r == nil || r.token != req.Header().Get(HeaderToken) {
			return nil, grpcError("Unauthenticated", "unregistered runner")
		}
		return next(context.WithValue(ctx, runnerKey{}, r), req)
	}
}

func runnerOf(ctx context.Context) *fakeRunner { return ctx.Value(runnerKey{}).(*fakeRunner) }

func (f *fakeForge) Register(_ context.Context, req *connect.Request[runnerv1.RegisterRequest]) (*connect.Response[runnerv1.RegisterResponse], error) {
	if req.Msg.Token == "" || req.Msg.Name == "" {
		return nil, errors.New("missing runner token, name")
	}
	if req.Msg.Token != f.regToken {
		return nil, errors.New("runner registration token not found")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	r := &fakeRunner{id: f.nextID, uuid: fmt.Sprintf("uuid-%d", f.nextID), token: fmt.Sprintf("token-%d", f.nextID), name: req.Msg.Name, labels: req.Msg.Labels, version: req.Msg.Version, registeredWithToken: req.Msg.Token}
	f.runners[r.uuid] = r
	return connect.NewResponse(&runnerv1.RegisterResponse{Runner: &runnerv1.Runner{Id: r.id, Uuid: r.uuid, Token: r.token, Name: r.name, Labels: r.labels}}), nil
}

func (f *fakeForge) Declare(ctx context.Context, req *connect.Request[runnerv1.DeclareRequest]) (*connect.Response[runnerv1.DeclareResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := runnerOf(ctx)
	r.labels, r.version = req.Msg.Labels, req.Msg.Version
	return connect.NewResponse(&runnerv1.DeclareResponse{Runner: &runnerv1.Runner{Id: r.id, Uuid: r.uuid, Labels: r.labels}}), nil
}

func (f *fakeForge) FetchTask(ctx context.Context, req *connect.Request[runnerv1.FetchTaskRequest]) (*connect.Response[runnerv1.FetchTaskResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := runnerOf(ctx)
	f.fetched = append(f.fetched, req.Msg.TasksVersion)
	if f.version == 0 {
		f.version++
	}
	var task *runnerv1.Task
	if req.Msg.TasksVersion != f.version {
		f.picks++
		for i, ft := range f.queue {
			if subset(ft.runsOn, r.labels) {
				f.queue = slices.Delete(f.queue, i, i+1)
				ft.runner, ft.assigned = r.uuid, time.Now()
				task = ft.proto
				break
			}
		}
	}
	return connect.NewResponse(&runnerv1.FetchTaskResponse{Task: task, TasksVersion: f.version}), nil
}

func subset(want, have []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func (f *fakeForge) task(ctx context.Context, id int64) (*fakeTask, error) {
	ft := f.tasks[id]
	if ft == nil {
		return nil, grpcError("Internal", "get task: task does not exist")
	}
	if ft.runner != runnerOf(ctx).uuid {
		return nil, grpcError("Internal", "invalid runner for task")
	}
	return ft, nil
}

func (f *fakeForge) UpdateTask(ctx context.Context, req *connect.Request[runnerv1.UpdateTaskRequest]) (*connect.Response[runnerv1.UpdateTaskResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := req.Msg.State
	ft, err := f.task(ctx, st.GetId())
	if err != nil {
		return nil, err
	}
	if ft.result == runnerv1.Result_RESULT_UNSPECIFIED {
		if st.Result != runnerv1.Result_RESULT_UNSPECIFIED {
			ft.result, ft.stopped, ft.finished = st.Result, st.StoppedAt.AsTime(), time.Now()
		} else {
			ft.beats++
		}
		for _, s := range st.Steps {
			ft.steps[s.Id] = s
		}
	}
	for k, v := range req.Msg.Outputs {
		if _, ok := ft.outputs[k]; !ok {
			ft.outputs[k] = v
		}
	}
	sent := make([]string, 0, len(ft.outputs))
	for k := range ft.outputs {
		sent = append(sent, k)
	}
	return connect.NewResponse(&runnerv1.UpdateTaskResponse{State: &runnerv1.TaskState{Id: st.Id, Result: ft.result}, SentOutputs: sent}), nil
}

func (f *fakeForge) UpdateLog(ctx context.Context, req *connect.Request[runnerv1.UpdateLogRequest]) (*connect.Response[runnerv1.UpdateLogResponse], error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft, err := f.task(ctx, req.Msg.TaskId)
	if err != nil {
		return nil, err
	}
	ack := int64(len(ft.rows))
	rows, index := req.Msg.Rows, req.Msg.Index
	ft.received += len(rows)

	if len(rows) == 0 || index > ack || int64(len(rows))+index <= ack {
		return connect.NewResponse(&runnerv1.UpdateLogResponse{AckIndex: ack}), nil
	}
	if ft.archived {
		return nil, grpcError("AlreadyExists", "log file has been archived")
	}
	ft.rows = append(ft.rows, rows[ack-index:]...)
	if req.Msg.NoMore {
		ft.archived = true
	}
	if f.dropLogs > 0 {
		f.dropLogs--
		return nil, connect.NewError(connect.CodeUnavailable, errors.New("response lost"))
	}
	return connect.NewResponse(&runnerv1.UpdateLogResponse{AckIndex: int64(len(ft.rows))}), nil
}

// push queues a task, as a push to a repository would.
func (f *fakeForge) push(payload string, runsOn ...string) int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextID++
	ctx, err := structpb.NewStruct(map[string]any{
		"repository": "o/r", "sha": "0123abcd", "ref": "refs/heads/main", "server_url": "http://forge.invalid",
		"run_id": "7", "job": "build", "token": "SECRET-TOKEN", "gitea_runtime_token": "RUNTIME",
	})
	if err != nil {
		f.t.Fatal(err)
	}
	task := &runnerv1.Task{
		Id: f.nextID, WorkflowPayload: []byte(payload), Context: ctx,
		Secrets: map[string]string{"GITEA_TOKEN": "SECRET-TOKEN", "GITHUB_TOKEN": "SECRET-TOKEN", "MY_SECRET": "hunter2"},
		Vars:    map[string]string{"WHO": "world"},
	}
	ft := &fakeTask{proto: task, runsOn: runsOn, steps: map[int64]*runnerv1.StepState{}, outputs: map[string]string{}}
	f.tasks[task.Id] = ft
	f.queue = append(f.queue, ft)
	f.version++
	return task.Id
}

// cancel cancels a task as the web UI does.
func (f *fakeForge) cancel(id int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := f.tasks[id]
	if ft.result == runnerv1.Result_RESULT_UNSPECIFIED {
		ft.result, ft.stopped, ft.finished = runnerv1.Result_RESULT_CANCELLED, time.Now(), time.Now()
	}
}

func (f *fakeForge) setDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
}

func (f *fakeForge) deleteRunners() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runners = map[string]*fakeRunner{}
}

// snapshot returns a copy of a task's stored state.
func (f *fakeForge) snapshot(id int64) fakeTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	ft := *f.tasks[id]
	ft.rows = slices.Clone(ft.rows)
	return ft
}

func (f *fakeForge) lines(id int64) []string {
	var out []string
	for _, r := range f.snapshot(id).rows {
		out = append(out, r.Content)
	}
	return out
}

func (f *fakeForge) count(method string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[method]
}

// waitFor polls cond until it holds or limit passes.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// waitDone waits for the forge to store a task's final result and its
// archived log.
func (f *fakeForge) waitDone(t *testing.T, id int64, limit time.Duration) fakeTask {
	t.Helper()
	waitFor(t, limit, fmt.Sprintf("task %d to finish", id), func() bool {
		ft := f.snapshot(id)
		return !ft.finished.IsZero() && ft.archived
	})
	return f.snapshot(id)
}

// runner returns a copy of a registered runner, or nil.
func (f *fakeForge) runner(uuid string) *fakeRunner {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.runners[uuid]
	if r == nil {
		return nil
	}
	c := *r
	c.labels = slices.Clone(r.labels)
	return &c
}
