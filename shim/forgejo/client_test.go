package forgejo

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want error
	}{
		{"gitea unregistered runner", connect.NewError(connect.CodeUnknown, errors.New("rpc error: code = Unauthenticated desc = unregistered runner")), ErrUnauthorized},
		{"forgejo unauthenticated", connect.NewError(connect.CodeUnauthenticated, errors.New("no")), ErrUnauthorized},
		{"task of another runner", connect.NewError(connect.CodeUnknown, errors.New("rpc error: code = Internal desc = invalid runner for task")), ErrTaskGone},
		{"gitea archived log", connect.NewError(connect.CodeUnknown, errors.New("rpc error: code = AlreadyExists desc = log file has been archived")), ErrLogClosed},
		{"outage", connect.NewError(connect.CodeUnavailable, errors.New("502")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := classify(tt.err)
			if tt.want == nil {
				if Permanent(got) {
					t.Fatalf("classify = %v: permanent", got)
				}
				return
			}
			if !errors.Is(got, tt.want) || !Permanent(got) {
				t.Fatalf("classify = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestFakeForgeIsStrict pins the Gitea behaviour the other tests rely on,
// through the runner's own client.
func TestFakeForgeIsStrict(t *testing.T) {
	f := newFakeForge(t)
	ctx := context.Background()

	// Without credentials: HTTP 500, code unknown, "unregistered runner".
	resp, err := http.Post(f.URL()+"api/actions/runner.v1.RunnerService/FetchTask", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 500 || !strings.Contains(string(body), "unregistered runner") || !strings.Contains(string(body), `"unknown"`) {
		t.Fatalf("unauthenticated FetchTask: %d %s", resp.StatusCode, body)
	}

	runner, err := NewClient(f.URL(), "", "").Register(ctx, &runnerv1.RegisterRequest{Name: "r", Token: f.regToken, Labels: []string{"solstice-test"}})
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient(f.URL(), runner.Uuid, runner.Token)
	id := f.push(goodJob, "solstice-test")
	if r, err := c.FetchTask(ctx, 0); err != nil || r.Task.GetId() != id {
		t.Fatalf("FetchTask = %v, %v", r, err)
	}
	row := func(s string) *runnerv1.LogRow { return &runnerv1.LogRow{Time: timestamppb.Now(), Content: s} }
	steps := []struct {
		name   string
		index  int64
		rows   []string
		noMore bool
		ack    int64
		err    error
	}{
		{"first rows", 0, []string{"a", "b", "c"}, false, 3, nil},
		{"overlapping resend", 1, []string{"b", "c", "d"}, false, 4, nil},
		{"gap is not stored", 6, []string{"x"}, false, 4, nil},
		{"no_more without rows is ignored", 4, nil, true, 4, nil},
		{"no_more with rows archives", 4, []string{"e"}, true, 5, nil},
		{"a full resend after archiving is fine", 0, []string{"a", "b", "c", "d", "e"}, false, 5, nil},
		{"new rows after archiving", 5, []string{"f"}, false, 0, ErrLogClosed},
	}
	for _, s := range steps {
		var rows []*runnerv1.LogRow
		for _, r := range s.rows {
			rows = append(rows, row(r))
		}
		ack, err := c.UpdateLog(ctx, &runnerv1.UpdateLogRequest{TaskId: id, Index: s.index, Rows: rows, NoMore: s.noMore})
		if !errors.Is(err, s.err) || (s.err == nil && ack != s.ack) {
			t.Fatalf("%s: ack %d err %v; want ack %d err %v", s.name, ack, err, s.ack, s.err)
		}
	}
	if got := strings.Join(f.lines(id), ""); got != "abcde" {
		t.Fatalf("stored %q", got)
	}

	// Cancelling in the UI shows in the next UpdateTask response only.
	f.cancel(id)
	r, err := c.UpdateTask(ctx, &runnerv1.UpdateTaskRequest{State: &runnerv1.TaskState{Id: id}})
	if err != nil || r.State.Result != runnerv1.Result_RESULT_CANCELLED {
		t.Fatalf("UpdateTask after cancel = %v, %v", r, err)
	}
	if _, err := NewClient(f.URL(), runner.Uuid, "wrong").FetchTask(ctx, 0); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("wrong token: %v", err)
	}
}
