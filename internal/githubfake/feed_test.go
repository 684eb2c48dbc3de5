package githubfake

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestFeedWebsocket(t *testing.T) {
	s := New(Options{PollTimeout: 2 * time.Second})
	defer s.Close()
	c, id, name := jitClient(t, s, s.JITConfig("r", nil))
	c.authenticate()
	c.openSession(id, name)
	job := s.QueueJob(JobSpec{Steps: []Step{{Run: "echo hi"}}})
	a := acquire(t, c)
	if _, r, err := websocket.DefaultDialer.Dial(a.feedURL, nil); err == nil || r.StatusCode != 401 {
		t.Fatalf("dial without token: %v", err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(a.feedURL, http.Header{"Authorization": {"Bearer " + a.token}})
	if err != nil {
		t.Fatal(err)
	}
	msg := `{"count":2,"value":["hi","there"],"stepId":"` + a.stepIDs[0] + `","startLine":1}`
	if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for ctx.Err() == nil && len(job.Snapshot().Feed) == 0 {
		time.Sleep(10 * time.Millisecond)
	}
	if f := job.Snapshot().Feed; len(f) != 1 || f[0].Lines[1] != "there" || f[0].StartLine != 1 {
		t.Fatalf("feed = %+v", f)
	}
	if rs := s.Rejections(); len(rs) != 1 || rs[0].Status != 401 {
		t.Fatalf("rejections = %v", rs)
	}
}
