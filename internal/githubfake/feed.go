package githubfake

// Live console websocket. Checked against actions/runner
// src/Runner.Common/ResultsServer.cs and JobServer.cs (Authorization:
// Bearer <job token>; text messages of TimelineRecordFeedLinesWrapper,
// sent in 1 KiB fragments) and src/Sdk/DTWebApi/WebApi/
// TimelineRecordFeedLinesWrapper.cs (camelCase: count, value, stepId,
// startLine).

import (
	"fmt"
	"net/http"

	"github.com/gorilla/websocket"
)

type feedMessage struct {
	Count     *int     `json:"count"`
	Value     []string `json:"value"`
	StepID    string   `json:"stepId"`
	StartLine *int64   `json:"startLine"`
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (s *Server) handleFeed(w http.ResponseWriter, r *http.Request) {
	j := s.authJob(w, r)
	if j == nil {
		return
	}
	if r.PathValue("job") != j.jobID {
		s.record(r, http.StatusNotFound, "feed: job token is for another job")
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	conn, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		s.record(r, http.StatusBadRequest, "feed: websocket upgrade: "+err.Error())
		return
	}
	defer conn.Close()
	for {
		typ, data, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if typ != websocket.TextMessage {
			s.record(r, 0, "feed: non-text websocket message")
			continue
		}
		if reason := s.storeFeed(j, data); reason != "" {
			s.record(r, 0, "feed: "+reason)
		}
	}
}

func (s *Server) storeFeed(j *Job, data []byte) string {
	var m feedMessage
	if err := unmarshalStrict(data, &m); err != nil {
		return err.Error()
	}
	switch {
	case m.Count == nil || *m.Count != len(m.Value):
		return fmt.Sprintf("count does not match %d lines in value", len(m.Value))
	case !isGUID(m.StepID):
		return fmt.Sprintf("stepId %q is not a lowercase GUID", m.StepID)
	case m.StartLine != nil && *m.StartLine < 1:
		return fmt.Sprintf("startLine %d must be >= 1", *m.StartLine)
	}
	b := FeedBatch{StepID: m.StepID, Lines: m.Value}
	if m.StartLine != nil {
		b.StartLine = *m.StartLine
	}
	s.mu.Lock()
	j.result.Feed = append(j.result.Feed, b)
	s.mu.Unlock()
	return ""
}
