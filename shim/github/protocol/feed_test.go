package protocol

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestFeed(t *testing.T) {
	type got struct {
		auth, ua string
		msgs     []map[string]any
	}
	done := make(chan got, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		g := got{auth: r.Header.Get("Authorization"), ua: r.Header.Get("User-Agent")}
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, data, err := c.ReadMessage()
			if err != nil {
				done <- g
				return
			}
			var m map[string]any
			if typ != websocket.TextMessage || json.Unmarshal(data, &m) != nil {
				t.Errorf("bad frame %d %s", typ, data)
			}
			g.msgs = append(g.msgs, m)
		}
	}))
	defer srv.Close()
	m := jobMessage(t, "https://run/", "https://res/", "ws"+strings.TrimPrefix(srv.URL, "http")+"/feed")
	j, err := NewJobClient(m, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	f, err := j.OpenFeed(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	lines := make([]string, 150)
	for i := range lines {
		lines[i] = "line"
	}
	lines[0] = strings.Repeat("é", 1500)
	if err := f.Send(context.Background(), "step-1", 1, lines); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	g := <-done
	if g.auth != "Bearer jobtok" || !strings.HasPrefix(g.ua, "GitHubActionsRunner-") || len(g.msgs) != 2 {
		t.Fatalf("feed: %+v", g)
	}
	m0, m1 := g.msgs[0], g.msgs[1]
	if m0["count"] != float64(100) || m0["stepId"] != "step-1" || m0["startLine"] != float64(1) || len(m0["value"].([]any)) != 100 {
		t.Errorf("first message %v", m0["count"])
	}
	if first := m0["value"].([]any)[0].(string); first != strings.Repeat("é", 1024)+"..." {
		t.Errorf("long line not cut at 1024 chars: %d bytes", len(first))
	}
	if m1["count"] != float64(50) || m1["startLine"] != float64(101) {
		t.Errorf("second message count %v start %v", m1["count"], m1["startLine"])
	}
}
