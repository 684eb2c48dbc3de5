package protocol

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Message types the runner knows (Runner.Listener/Runner.cs and the
// *Message classes in Sdk).
const (
	MessageRunnerJobRequest        = "RunnerJobRequest"
	MessagePipelineAgentJobRequest = "PipelineAgentJobRequest" // legacy, not supported here
	MessageJobCancellation         = "JobCancellation"
	MessageBrokerMigration         = "BrokerMigration"
	MessageAgentRefresh            = "AgentRefresh"
	MessageRunnerRefresh           = "RunnerRefresh"
	MessageForceTokenRefresh       = "ForceTokenRefresh"
	MessageRunnerRefreshConfig     = "RunnerRefreshConfig"
	// MessageRunnerShutdown is HostedRunnerShutdownMessage.MessageType.
	MessageRunnerShutdown = "RunnerShutdown"
)

// Message is a broker message (TaskAgentMessage). Broker bodies are not
// encrypted; IV is kept for completeness.
type Message struct {
	MessageID   int64  `json:"messageId"`
	MessageType string `json:"messageType"`
	IV          []byte `json:"iv,omitempty"`
	Body        string `json:"body"`
}

// RunnerJobRequest is the body of a RunnerJobRequest message
// (Runner.Listener/RunnerJobRequestRef.cs).
type RunnerJobRequest struct {
	ID                string `json:"id"`
	RunnerRequestID   string `json:"runner_request_id"`
	ShouldAcknowledge bool   `json:"should_acknowledge"`
	RunServiceURL     string `json:"run_service_url"`
	BillingOwnerID    string `json:"billing_owner_id"`
}

// ParseRunnerJobRequest decodes a RunnerJobRequest body.
func ParseRunnerJobRequest(body string) (*RunnerJobRequest, error) {
	var r RunnerJobRequest
	if err := decode("protocol: parse RunnerJobRequest", []byte(body), &r); err != nil {
		return nil, err
	}
	if r.RunnerRequestID == "" {
		return nil, errors.New("protocol: RunnerJobRequest without runner_request_id")
	}
	return &r, nil
}

// JobCancellation is the body of a JobCancellation message
// (JobCancelMessage: {jobId: GUID, timeout: .NET TimeSpan "hh:mm:ss"}).
type JobCancellation struct {
	JobID   string
	Timeout time.Duration
}

// ParseJobCancellation decodes a JobCancellation body.
func ParseJobCancellation(body string) (*JobCancellation, error) {
	var raw struct {
		JobID   string          `json:"jobId"`
		Timeout json.RawMessage `json:"timeout"`
	}
	if err := decode("protocol: parse JobCancellation", []byte(body), &raw); err != nil {
		return nil, err
	}
	d, err := parseTimeSpanJSON(raw.Timeout)
	if err != nil {
		return nil, fmt.Errorf("protocol: parse JobCancellation timeout: %w", err)
	}
	return &JobCancellation{JobID: raw.JobID, Timeout: d}, nil
}

// BrokerMigration is the body of a BrokerMigration message.
type BrokerMigration struct {
	BrokerBaseURL string `json:"brokerBaseUrl"`
}

// ParseBrokerMigration decodes a BrokerMigration body.
func ParseBrokerMigration(body string) (*BrokerMigration, error) {
	var m BrokerMigration
	if err := decode("protocol: parse BrokerMigration", []byte(body), &m); err != nil {
		return nil, err
	}
	if m.BrokerBaseURL == "" {
		return nil, errors.New("protocol: BrokerMigration without brokerBaseUrl")
	}
	return &m, nil
}

// parseTimeSpanJSON accepts a .NET TimeSpan string ("[-][d.]hh:mm:ss[.f]")
// or a number of seconds; null/absent is zero.
func parseTimeSpanJSON(raw json.RawMessage) (time.Duration, error) {
	s := strings.TrimSpace(string(raw))
	if s == "" || s == "null" {
		return 0, nil
	}
	if f, err := strconv.ParseFloat(s, 64); err == nil {
		return time.Duration(f * float64(time.Second)), nil
	}
	var str string
	if err := json.Unmarshal(raw, &str); err != nil {
		return 0, err
	}
	return ParseTimeSpan(str)
}

// ParseTimeSpan parses the .NET TimeSpan "c" format: [-][d.]hh:mm:ss[.fffffff].
func ParseTimeSpan(s string) (time.Duration, error) {
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return 0, fmt.Errorf("invalid TimeSpan %q", s)
	}
	var days, hours int64
	var err error
	if d, h, ok := strings.Cut(parts[0], "."); ok {
		if days, err = strconv.ParseInt(d, 10, 64); err != nil {
			return 0, fmt.Errorf("invalid TimeSpan %q", s)
		}
		parts[0] = h
	}
	if hours, err = strconv.ParseInt(parts[0], 10, 64); err != nil {
		return 0, fmt.Errorf("invalid TimeSpan %q", s)
	}
	mins, err1 := strconv.ParseInt(parts[1], 10, 64)
	secs, err2 := strconv.ParseFloat(parts[2], 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("invalid TimeSpan %q", s)
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(hours)*time.Hour +
		time.Duration(mins)*time.Minute + time.Duration(secs*float64(time.Second))
	if neg {
		d = -d
	}
	return d, nil
}
