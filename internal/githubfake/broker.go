package githubfake

// Broker endpoints. Checked against actions/runner:
//   src/Sdk/WebApi/WebApi/BrokerHttpClient.cs (paths "session", "message",
//     "acknowledge"; query sessionId/status/runnerVersion/os/architecture/
//     disableUpdate; DELETE session has no query),
//   src/Sdk/RSWebApi/Contracts/BrokerError.cs, BrokerErrorKind.cs,
//   src/Sdk/DTWebApi/WebApi/TaskAgentSession.cs, TaskAgentReference.cs,
//     TaskAgentMessage.cs, TaskAgentStatus.cs, JobCancelMessage.cs,
//     BrokerMigrationMessage.cs,
//   src/Runner.Listener/RunnerJobRequestRef.cs (snake_case body),
//   src/Runner.Listener/BrokerMessageListener.cs (null message = keep polling).
// JSON is camelCase (VssJsonMediaTypeFormatter).

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

type session struct {
	id       string
	owner    string
	lastPoll time.Time
}

type brokerMessage struct {
	MessageID   int64  `json:"messageId"`
	MessageType string `json:"messageType"`
	Body        string `json:"body"`
}

type agentReference struct {
	ID                uint64          `json:"id"`
	Name              string          `json:"name"`
	Version           string          `json:"version"`
	OSDescription     string          `json:"osDescription,omitempty"`
	Enabled           *bool           `json:"enabled,omitempty"`
	Ephemeral         *bool           `json:"ephemeral,omitempty"`
	DisableUpdate     *bool           `json:"disableUpdate,omitempty"`
	Status            json.RawMessage `json:"status,omitempty"`
	ProvisioningState *string         `json:"provisioningState,omitempty"`
	AccessPoint       string          `json:"accessPoint,omitempty"`
	Links             json.RawMessage `json:"_links,omitempty"`
}

type sessionRequest struct {
	SessionID              string          `json:"sessionId"`
	EncryptionKey          json.RawMessage `json:"encryptionKey"`
	OwnerName              string          `json:"ownerName"`
	Agent                  *agentReference `json:"agent"`
	UseFipsEncryption      bool            `json:"useFipsEncryption"`
	BrokerMigrationMessage json.RawMessage `json:"brokerMigrationMessage"`
}

type brokerError struct {
	Source       string `json:"source"`
	ErrorKind    string `json:"errorKind"`
	StatusCode   int    `json:"statusCode"`
	ErrorMessage string `json:"errorMessage"`
}

const zeroGUID = "00000000-0000-0000-0000-000000000000"

func (s *Server) brokerRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /broker/session", s.handleCreateSession)
	mux.HandleFunc("DELETE /broker/session", s.handleDeleteSession)
	mux.HandleFunc("GET /broker/message", s.handleMessage)
	mux.HandleFunc("POST /broker/acknowledge", s.handleAcknowledge)
}

func (s *Server) brokerFail(w http.ResponseWriter, r *http.Request, status int, kind, msg string) {
	s.record(r, status, "broker: "+msg)
	writeJSON(w, status, brokerError{Source: "actions-broker-listener", ErrorKind: kind, StatusCode: status, ErrorMessage: msg})
}

func (s *Server) handleCreateSession(w http.ResponseWriter, r *http.Request) {
	rn := s.authRunner(w, r)
	if rn == nil {
		return
	}
	var req sessionRequest
	if err := decodeStrict(r, &req); err != nil {
		s.brokerFail(w, r, http.StatusBadRequest, "", "create session: "+err.Error())
		return
	}
	if reason := validateSessionRequest(&req, rn); reason != "" {
		s.brokerFail(w, r, http.StatusBadRequest, "", "create session: "+reason)
		return
	}
	s.mu.Lock()
	if old := rn.session; old != nil && time.Since(old.lastPoll) < s.opts.SessionIdleTimeout {
		s.recordLocked(r, http.StatusConflict, "broker: create session: runner already has session "+old.id)
		s.mu.Unlock()
		http.Error(w, "A session for this runner already exists.", http.StatusConflict)
		return
	}
	sess := &session{id: newGUID(), owner: req.OwnerName, lastPoll: time.Now()}
	rn.session = sess
	s.counters.SessionsCreated++
	s.notifyLocked()
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"sessionId":         sess.id,
		"ownerName":         req.OwnerName,
		"agent":             req.Agent,
		"useFipsEncryption": false,
	})
}

func validateSessionRequest(req *sessionRequest, rn *runner) string {
	switch {
	case req.Agent == nil:
		return "agent is missing"
	case req.Agent.ID != uint64(rn.id):
		return fmt.Sprintf("agent.id %d is not this runner's id %d", req.Agent.ID, rn.id)
	case req.Agent.Name != rn.name:
		return fmt.Sprintf("agent.name %q is not this runner's name %q", req.Agent.Name, rn.name)
	case req.Agent.Version == "":
		return "agent.version is empty"
	case req.OwnerName == "":
		return "ownerName is empty"
	case req.SessionID != "" && req.SessionID != zeroGUID:
		return "sessionId must be empty: the server assigns it"
	}
	return ""
}

func (s *Server) handleDeleteSession(w http.ResponseWriter, r *http.Request) {
	rn := s.authRunner(w, r)
	if rn == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if rn.session == nil {
		s.recordLocked(r, http.StatusNotFound, "broker: delete session: runner has no session")
		http.Error(w, "session not found", http.StatusNotFound)
		return
	}
	rn.session = nil
	s.counters.SessionsDeleted++
	s.notifyLocked()
	w.WriteHeader(http.StatusOK)
}

// pollParams are the query parameters of GET message / POST acknowledge.
type pollParams struct {
	sessionID, status, version string
}

func (s *Server) checkPollQuery(r *http.Request, rn *runner) (pollParams, string, string) {
	q := r.URL.Query()
	p := pollParams{sessionID: q.Get("sessionId"), status: q.Get("status"), version: q.Get("runnerVersion")}
	s.mu.Lock()
	sess := rn.session
	s.mu.Unlock()
	switch {
	case sess == nil || p.sessionID != sess.id:
		return p, "RunnerSessionInvalid", fmt.Sprintf("sessionId %q is not the runner's current session", p.sessionID)
	case p.status != "Online" && p.status != "Busy":
		return p, "", fmt.Sprintf("status %q must be Online or Busy (TaskAgentStatus.ToString())", p.status)
	case p.version == "":
		return p, "", "runnerVersion query parameter is missing"
	case !s.versionOK(p.version):
		return p, "RunnerVersionTooOld", fmt.Sprintf("Runner version v%s is deprecated and cannot receive messages.", p.version)
	}
	if d := q.Get("disableUpdate"); d != "" && d != "true" && d != "false" {
		return p, "", fmt.Sprintf("disableUpdate %q must be true or false", d)
	}
	return p, "", ""
}

func (s *Server) handleMessage(w http.ResponseWriter, r *http.Request) {
	rn := s.authRunner(w, r)
	if rn == nil {
		return
	}
	s.mu.Lock()
	s.counters.Polls++
	s.mu.Unlock()
	p, kind, reason := s.checkPollQuery(r, rn)
	if reason != "" {
		status := http.StatusBadRequest
		switch kind {
		case "RunnerSessionInvalid":
			status = http.StatusNotFound
		case "RunnerVersionTooOld":
			status = http.StatusForbidden
		}
		s.brokerFail(w, r, status, kind, reason)
		return
	}
	msg := s.awaitMessage(r, rn, p)
	if msg == nil {
		w.WriteHeader(http.StatusAccepted)
		return
	}
	writeJSON(w, http.StatusOK, msg)
}

// awaitMessage long-polls for a control message or a job for rn.
func (s *Server) awaitMessage(r *http.Request, rn *runner, p pollParams) *brokerMessage {
	deadline := time.NewTimer(s.opts.PollTimeout)
	defer deadline.Stop()
	s.mu.Lock()
	defer s.mu.Unlock()
	if p.status == "Online" && rn.current != nil && rn.current.acquired {
		s.recordLocked(r, 0, "broker: polled with status=Online while job "+rn.current.jobID+" is running (want Busy)")
	}
	for {
		if rn.session == nil || rn.session.id != p.sessionID {
			return nil
		}
		rn.session.lastPoll = time.Now()
		if msg := s.nextMessageLocked(rn, p.status); msg != nil {
			return msg
		}
		wake := s.wake
		s.mu.Unlock()
		select {
		case <-wake:
		case <-deadline.C:
			s.mu.Lock()
			return nil
		case <-r.Context().Done():
			s.mu.Lock()
			return nil
		}
		s.mu.Lock()
	}
}

func (s *Server) nextMessageLocked(rn *runner, status string) *brokerMessage {
	if len(rn.pending) > 0 {
		m := rn.pending[0]
		rn.pending = rn.pending[1:]
		return &m
	}
	if status != "Online" || rn.current != nil || (rn.ephemeral && rn.jobsTaken > 0) {
		return nil
	}
	j := s.matchJobLocked(rn)
	if j == nil {
		return nil
	}
	j.assignLocked(rn)
	body, _ := json.Marshal(map[string]any{
		"id":                 strconv.FormatInt(j.requestID, 10),
		"runner_request_id":  j.runnerRequestID,
		"run_service_url":    s.RunServiceURL(),
		"should_acknowledge": !s.opts.NoAcknowledge,
		"billing_owner_id":   j.billingOwnerID,
	})
	return s.newMessageLocked("RunnerJobRequest", string(body))
}

func (s *Server) newMessageLocked(typ, body string) *brokerMessage {
	s.nextID++
	return &brokerMessage{MessageID: s.nextID, MessageType: typ, Body: body}
}

// matchJobLocked picks the oldest queued job whose labels the runner has.
func (s *Server) matchJobLocked(rn *runner) *Job {
	have := map[string]bool{}
	for _, l := range rn.labels {
		have[strings.ToLower(l)] = true
	}
	for _, j := range s.jobs {
		if j.runner != nil || j.isDone() {
			continue
		}
		ok := true
		for _, l := range j.spec.Labels {
			ok = ok && have[strings.ToLower(l)]
		}
		if ok {
			return j
		}
	}
	return nil
}

func (s *Server) handleAcknowledge(w http.ResponseWriter, r *http.Request) {
	rn := s.authRunner(w, r)
	if rn == nil {
		return
	}
	if _, kind, reason := s.checkPollQuery(r, rn); reason != "" && kind != "RunnerVersionTooOld" {
		s.brokerFail(w, r, http.StatusBadRequest, kind, "acknowledge: "+reason)
		return
	}
	var req struct {
		RunnerRequestID string `json:"runnerRequestId"`
	}
	if err := decodeStrict(r, &req); err != nil {
		s.brokerFail(w, r, http.StatusBadRequest, "", "acknowledge: "+err.Error())
		return
	}
	s.mu.Lock()
	s.counters.Acknowledges++
	j := rn.current
	if j == nil || j.runnerRequestID != req.RunnerRequestID {
		s.mu.Unlock()
		s.brokerFail(w, r, http.StatusNotFound, "AcknowledgeJobNotFound", fmt.Sprintf("acknowledge: no job with runnerRequestId %q for this runner", req.RunnerRequestID))
		return
	}
	j.acked = true
	s.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

// Cancel asks for job's cancellation. A queued job is withdrawn at once
// (its Wait returns conclusion "canceled"); an assigned job gets a
// JobCancellation message on its runner's next poll.
func (s *Server) Cancel(j *Job) {
	s.mu.Lock()
	defer s.mu.Unlock()
	j.cancelRequested = true
	if j.runner == nil {
		j.result.Conclusion = "canceled"
		j.finishLocked(nil)
		s.notifyLocked()
		return
	}
	body, _ := json.Marshal(map[string]string{"jobId": j.jobID, "timeout": dotnetTimeSpan(s.opts.CancelTimeout)})
	j.runner.pending = append(j.runner.pending, *s.newMessageLocked("JobCancellation", string(body)))
	s.notifyLocked()
}

// TriggerBrokerMigration queues a BrokerMigration message
// ({"brokerBaseUrl": BrokerURL()}) for every runner holding a session.
func (s *Server) TriggerBrokerMigration() {
	s.mu.Lock()
	defer s.mu.Unlock()
	body, _ := json.Marshal(map[string]string{"brokerBaseUrl": s.BrokerURL()})
	for _, rn := range s.runners {
		if rn.session != nil {
			rn.pending = append(rn.pending, *s.newMessageLocked("BrokerMigration", string(body)))
		}
	}
	s.notifyLocked()
}

// dotnetTimeSpan formats d as Newtonsoft writes a TimeSpan ("00:05:00").
func dotnetTimeSpan(d time.Duration) string {
	sec := int64(d / time.Second)
	out := fmt.Sprintf("%02d:%02d:%02d", sec/3600%24, sec/60%60, sec%60)
	if days := sec / 86400; days > 0 {
		out = fmt.Sprintf("%d.%s", days, out)
	}
	return out
}
