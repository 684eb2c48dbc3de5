package nomad

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Meta identifies a job in its forge.
type Meta struct {
	Forge      string // forgejo, github, local
	Instance   string // the forge's URL, or the local machine's name
	TaskID     string // the forge's id for the job
	Repository string
	Run        string
	JobName    string
}

func (m Meta) validate() error {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"forge", m.Forge}, {"instance", m.Instance}, {"task id", m.TaskID}, {"job name", m.JobName},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("dispatch: job meta lacks %s", strings.Join(missing, ", "))
	}
	return nil
}

func (m Meta) nomad(secretsKey string) map[string]string {
	return map[string]string{
		contract.MetaForge: m.Forge, contract.MetaInstance: m.Instance, contract.MetaTaskID: m.TaskID,
		contract.MetaRepository: m.Repository, contract.MetaRun: m.Run, contract.MetaJobName: m.JobName,
		contract.MetaSecretsKey: secretsKey,
	}
}

func metaFrom(job map[string]string) Meta {
	return Meta{
		Forge: job[contract.MetaForge], Instance: job[contract.MetaInstance], TaskID: job[contract.MetaTaskID],
		Repository: job[contract.MetaRepository], Run: job[contract.MetaRun], JobName: job[contract.MetaJobName],
	}
}

// Client is the Nomad layer in production: it implements Jobs against
// one Nomad namespace.
type Client struct {
	API *api.Client
	Log hclog.Logger // may be nil
}

func (c *Client) log() hclog.Logger {
	if c.Log == nil {
		return hclog.NewNullLogger()
	}
	return c.Log
}

// Request is one job to run.
type Request struct {
	Label   string            // the canonical catalog label (picks the parent job)
	Plan    []byte            // the encoded job plan: the dispatch payload
	Secrets map[string]string // values the job may use; never in the payload
	Meta    Meta
	// BundleURL, for solstice run, is where the client fetches the
	// repository bundle; forges are reached by the guest itself.
	BundleURL string
	// Debug says the plan asks for a debug session if the job fails: its
	// stream then goes on past a failed job_finished (contract.Ends).
	Debug bool
}

// Job is a dispatched job as the shims see it.
type Job struct {
	ID         string // the dispatched job's id
	Label      string
	Meta       Meta
	SecretsKey string
	// Steps is the step count of the job's plan as dispatched, read back
	// from Nomad for a job found by InFlight; zero when unknown.
	Steps int
	// Debug is set when the plan asks for a debug session (Request.Debug;
	// read back from the payload for a job found by InFlight).
	Debug bool

	learned learned // what Status found out that never changes
}

// Dispatch stores the secrets, then dispatches the label's parent job with
// the plan as payload. If the dispatch fails the secrets are removed again.
func (c *Client) Dispatch(ctx context.Context, req Request) (*Job, error) {
	if err := req.Meta.validate(); err != nil {
		return nil, err
	}
	if len(req.Plan) > contract.PayloadLimit {
		return nil, fmt.Errorf("dispatch %s: the job plan is %d bytes, over Nomad's %d-byte payload limit", req.Meta.JobName, len(req.Plan), contract.PayloadLimit)
	}
	key, err := randomKey()
	if err != nil {
		return nil, err
	}
	if err := c.putSecrets(ctx, key, req.Secrets); err != nil {
		return nil, err
	}
	q := (&api.WriteOptions{}).WithContext(ctx)
	meta := req.Meta.nomad(key)
	if req.BundleURL != "" {
		meta[contract.MetaBundleURL] = req.BundleURL
	}
	resp, _, err := c.API.Jobs().Dispatch(contract.ParentJob(req.Label), meta, req.Plan, idPrefix(req.Meta), q)
	if err != nil {
		c.deleteSecrets(context.WithoutCancel(ctx), key)
		return nil, fmt.Errorf("dispatch %s to %s: %w", req.Meta.JobName, contract.ParentJob(req.Label), explainDenied(err, "dispatching needs the dispatch-job capability in the namespace"))
	}
	c.log().Info("dispatched", "job", resp.DispatchedJobID, "label", req.Label, "forge_task", req.Meta.TaskID)
	job := &Job{ID: resp.DispatchedJobID, Label: req.Label, Meta: req.Meta, SecretsKey: key, Debug: req.Debug}
	if err := c.learnJob(ctx, job); err != nil {
		// Only the forge log's queue time needs it; Nomad's clock is
		// better, but this one is close.
		c.log().Warn("cannot read the dispatched job's submit time; using ours", "job", job.ID, "error", err)
		job.learned.fromJob(time.Now().UnixNano(), false)
	}
	return job, nil
}

// idPrefix makes dispatched job ids readable in `nomad job status`.
func idPrefix(m Meta) string {
	clean := strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') || r == '-' {
			return r
		}
		return '-'
	}, m.Forge+"-"+m.TaskID)
	if len(clean) > 40 {
		clean = clean[:40]
	}
	return clean
}

func randomKey() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make secrets key: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// putSecrets writes the job's secrets Variable. An empty set is still
// written, so the task's template always has something to render.
func (c *Client) putSecrets(ctx context.Context, key string, secrets map[string]string) error {
	items := api.VariableItems{}
	for k, v := range secrets {
		items[k] = v
	}
	if len(items) == 0 {
		items["_"] = ""
	}
	v := &api.Variable{Path: contract.SecretsPrefix + key, Items: items}
	if _, _, err := c.API.Variables().Create(v, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("store job secrets: %w", explainDenied(err, "the token needs write on Variables "+contract.SecretsPrefix+"*"))
	}
	return nil
}

func (c *Client) deleteSecrets(ctx context.Context, key string) error {
	_, err := c.API.Variables().Delete(contract.SecretsPrefix+key, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil && !IsNotFound(err) {
		return fmt.Errorf("delete job secrets: %w", err)
	}
	return nil
}

// IsNotFound reports whether Nomad answered 404: the job, allocation or
// Variable is not (or no longer) there. It is the one test for that in
// the shims.
func IsNotFound(err error) bool {
	var ue api.UnexpectedResponseError
	return errors.As(err, &ue) && ue.StatusCode() == 404
}

// Cancel stops the dispatched job; the driver powers its VM off within the
// job's kill_timeout. Nomad 1.6.3's Job.Deregister needs submit-job,
// which would let the shims register any job, so the shims' policy has
// scale-job instead: refused a stop, Cancel scales the job's group to 0,
// which stops its allocation just the same and never re-runs it.
func (c *Client) Cancel(ctx context.Context, job *Job) error {
	_, _, err := c.API.Jobs().Deregister(job.ID, false, (&api.WriteOptions{}).WithContext(ctx))
	if IsPermissionDenied(err) {
		err = c.scaleToZero(ctx, job)
	}
	if err != nil {
		return fmt.Errorf("cancel %s: %w", job.ID, err)
	}
	job.learned.stop()
	c.log().Info("cancelled", "job", job.ID)
	return nil
}

// scaleToZero stops a job's allocations with scale-job only.
func (c *Client) scaleToZero(ctx context.Context, job *Job) error {
	zero := 0
	_, _, err := c.API.Jobs().Scale(job.ID, contract.GroupName, &zero, "cancelled by Solstice", false, nil, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("scale group %s to 0: %w", contract.GroupName, explainDenied(err, "stopping a job needs submit-job or scale-job in the namespace"))
	}
	return nil
}

// Finish removes what the job left in Nomad that it no longer needs: its
// secrets. Call it once the job has ended.
func (c *Client) Finish(ctx context.Context, job *Job) error {
	return c.deleteSecrets(ctx, job.SecretsKey)
}
