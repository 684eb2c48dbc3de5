package protocol

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// ErrJobGone: the job can no longer be taken or renewed — acquirejob
// answered 404/409/422, or renewjob/completejob 404 (judged by the
// run-service error body's statusCode when present, else the HTTP status).
// Acknowledge's AcknowledgeJobNotFound comes as a *BrokerError instead.
var ErrJobGone = errors.New("protocol: job no longer available")

// runServiceError is RunServiceError {source:"actions-run-service",
// statusCode, errorMessage}.
type runServiceError struct {
	Source     string `json:"source"`
	StatusCode int    `json:"statusCode"`
	Message    string `json:"errorMessage"`
}

// runStatus is the status the run service meant: the one in its error body
// when it has one, else the HTTP status.
func runStatus(r reply) int {
	var e runServiceError
	if json.Unmarshal(r.body, &e) == nil && e.Source == "actions-run-service" && e.StatusCode != 0 {
		return e.StatusCode
	}
	return r.status
}

// AcquireJob: POST {run_service_url}/acquirejob with {jobMessageId,
// runnerOS, billingOwnerId}, runner token (RunServiceHttpClient). runnerOS
// defaults to RunnerInfo.OS. 404/409/422 wrap ErrJobGone.
func (cl *Client) AcquireJob(ctx context.Context, r *RunnerJobRequest, runnerOS string) (*JobMessage, error) {
	const op = "protocol: acquire job"
	if r.RunServiceURL == "" {
		return nil, fmt.Errorf("%s: RunnerJobRequest has no run_service_url (legacy pipelines path, not supported)", op)
	}
	if runnerOS == "" {
		runnerOS = cl.info.OS
	}
	u, err := joinURL(r.RunServiceURL, "acquirejob")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	body := struct {
		JobMessageID   string `json:"jobMessageId,omitempty"`
		RunnerOS       string `json:"runnerOS,omitempty"`
		BillingOwnerID string `json:"billingOwnerId,omitempty"`
	}{r.RunnerRequestID, runnerOS, r.BillingOwnerID}
	c, err := jsonCall(op, http.MethodPost, u, body)
	if err != nil {
		return nil, err
	}
	rep, err := cl.do(ctx, c)
	if err != nil {
		return nil, err
	}
	if !rep.ok() {
		switch runStatus(rep) {
		case http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity:
			return nil, fmt.Errorf("%w: %w", ErrJobGone, c.errorFor(rep))
		}
		return nil, c.errorFor(rep)
	}
	var m JobMessage
	if err := decode(op, rep.body, &m); err != nil {
		return nil, err
	}
	m.Raw = append(json.RawMessage(nil), rep.body...)
	return &m, nil
}

// JobClient talks to the run and results services for one job,
// authenticated with the job token (SystemVssConnection AccessToken).
type JobClient struct {
	msg        *JobMessage
	runURL     string
	resultsURL string
	token      string
	hc         *http.Client
	// UserAgent defaults to DefaultUserAgent(DefaultRunnerVersion).
	UserAgent string
}

// NewJobClient returns a JobClient for m. renewjob/completejob go to the
// SystemVssConnection URL, as the official runner does (JobDispatcher and
// JobRunner connect the run server to systemConnection.Url); runServiceURL
// is used only when the message has no such URL.
func NewJobClient(m *JobMessage, runServiceURL string, hc *http.Client) (*JobClient, error) {
	tok := m.JobToken()
	if tok == "" {
		return nil, errors.New("protocol: job message has no SystemVssConnection AccessToken")
	}
	if m.Plan.PlanID == "" || m.JobID == "" {
		return nil, errors.New("protocol: job message lacks plan.planId or jobId")
	}
	base := runServiceURL
	if e, ok := m.SystemConnection(); ok && e.URL != "" {
		base = e.URL
	}
	if base == "" {
		return nil, errors.New("protocol: no run service URL for the job")
	}
	return &JobClient{msg: m, runURL: base, resultsURL: m.ResultsURL(), token: tok, hc: hc}, nil
}

func (j *JobClient) ua() string {
	if j.UserAgent != "" {
		return j.UserAgent
	}
	return DefaultUserAgent("")
}

// send performs c with the job token.
func (j *JobClient) send(ctx context.Context, c call) (reply, error) {
	return c.do(ctx, j.hc, j.ua(), "Bearer "+j.token)
}

// runCall posts v to {run}/path and returns the reply; 404 wraps ErrJobGone.
func (j *JobClient) runCall(ctx context.Context, op, path string, v any) (reply, error) {
	u, err := joinURL(j.runURL, path)
	if err != nil {
		return reply{}, fmt.Errorf("%s: %w", op, err)
	}
	c, err := jsonCall(op, http.MethodPost, u, v)
	if err != nil {
		return reply{}, err
	}
	r, err := j.send(ctx, c)
	if err != nil {
		return r, err
	}
	if !r.ok() {
		if runStatus(r) == http.StatusNotFound {
			return r, fmt.Errorf("%w: %w", ErrJobGone, c.errorFor(r))
		}
		return r, c.errorFor(r)
	}
	return r, nil
}

// RenewJob: POST {run}/renewjob with {planId, jobId}; returns lockedUntil.
// The runner renews every 60 s.
func (j *JobClient) RenewJob(ctx context.Context) (time.Time, error) {
	const op = "protocol: renew job"
	body := map[string]string{"planId": j.msg.Plan.PlanID, "jobId": j.msg.JobID}
	r, err := j.runCall(ctx, op, "renewjob", body)
	if err != nil {
		return time.Time{}, err
	}
	var resp struct {
		LockedUntil string `json:"lockedUntil"`
	}
	if err := decode(op, r.body, &resp); err != nil {
		return time.Time{}, err
	}
	t, err := parseDotNetTime(resp.LockedUntil)
	if err != nil {
		return time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	return t, nil
}
