package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

const (
	feedFrameSize    = 1024 // the runner sends each message in 1 KiB frames
	feedBatchLines   = 100  // at most 100 lines per message
	feedMaxLineChars = 1024 // longer lines are cut to 1024 chars + "..."
)

// Feed is the live console websocket (ResultsServer.cs). It is safe for
// concurrent use.
type Feed struct {
	mu   sync.Mutex
	conn *websocket.Conn
}

// OpenFeed dials the job's FeedStreamUrl with "Authorization: Bearer <job
// token>" and the User-Agent.
func (j *JobClient) OpenFeed(ctx context.Context) (*Feed, error) {
	u := j.msg.FeedURL()
	if u == "" {
		return nil, errors.New("protocol: open feed: job message has no FeedStreamUrl")
	}
	d := websocket.Dialer{
		Proxy:            http.ProxyFromEnvironment,
		HandshakeTimeout: 30 * time.Second,
		WriteBufferSize:  feedFrameSize,
	}
	if j.hc != nil {
		if t, ok := j.hc.Transport.(*http.Transport); ok {
			d.TLSClientConfig = t.TLSClientConfig
		}
	}
	h := http.Header{"Authorization": {"Bearer " + j.token}, "User-Agent": {j.ua()}}
	conn, resp, err := d.DialContext(ctx, u, h)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("protocol: open feed: %s: HTTP %d: %w", redactURL(u), resp.StatusCode, err)
		}
		return nil, fmt.Errorf("protocol: open feed: %s: %w", redactURL(u), err)
	}
	return &Feed{conn: conn}, nil
}

// feedMessage is TimelineRecordFeedLinesWrapper.
type feedMessage struct {
	Count     int      `json:"count"`
	Value     []string `json:"value"`
	StepID    string   `json:"stepId,omitempty"`
	StartLine int64    `json:"startLine,omitempty"`
}

// Send sends lines of a step, starting at line number startLine (1-based),
// as messages of at most 100 lines {count, value, stepId, startLine}, each
// one websocket text message split into 1 KiB frames. Lines longer than
// 1024 characters are cut as the runner does.
func (f *Feed) Send(ctx context.Context, stepID string, startLine int64, lines []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn == nil {
		return errors.New("protocol: feed is closed")
	}
	for i := 0; i < len(lines); i += feedBatchLines {
		batch := lines[i:min(i+feedBatchLines, len(lines))]
		m := feedMessage{Count: len(batch), Value: truncateLines(batch), StepID: stepID, StartLine: startLine + int64(i)}
		if err := f.write(ctx, m); err != nil {
			return err
		}
	}
	return nil
}

func (f *Feed) write(ctx context.Context, m feedMessage) error {
	data, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("protocol: feed: %w", err)
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(60 * time.Second) // the runner's per-batch limit
	}
	_ = f.conn.SetWriteDeadline(deadline)
	w, err := f.conn.NextWriter(websocket.TextMessage)
	if err != nil {
		return fmt.Errorf("protocol: feed: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("protocol: feed: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("protocol: feed: %w", err)
	}
	return nil
}

func truncateLines(lines []string) []string {
	out := make([]string, len(lines))
	for i, l := range lines {
		out[i] = truncateLine(l)
	}
	return out
}

// truncateLine cuts at 1024 UTF-16 code units, as C# Substring does.
func truncateLine(l string) string {
	if len(l) <= feedMaxLineChars {
		return l
	}
	units := 0
	for i, r := range l {
		n := 1
		if r >= 0x10000 {
			n = 2
		}
		if units+n > feedMaxLineChars {
			return l[:i] + "..."
		}
		units += n
	}
	return l
}

// Close sends a normal closure and closes the connection.
func (f *Feed) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.conn == nil {
		return nil
	}
	msg := websocket.FormatCloseMessage(websocket.CloseNormalClosure, "")
	_ = f.conn.WriteControl(websocket.CloseMessage, msg, time.Now().Add(5*time.Second))
	err := f.conn.Close()
	f.conn = nil
	return err
}
