// Package dispatch is Solstice's queue: a CI job is a dispatched Nomad batch
// job. It stores a job's secrets where only that job's task can read them,
// dispatches the parent job of the job's runs-on label, reports the job's
// stage, follows its event stream through Nomad's file-system API, cancels
// it, and rebuilds the set of jobs in flight from Nomad alone, so the shims
// that use it keep no local state.
package dispatch

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"

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

// Client dispatches and watches jobs in one Nomad namespace.
type Client struct {
	API *api.Client
	Log hclog.Logger
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
}

// Job is a dispatched job as the shims see it.
type Job struct {
	ID         string // the dispatched job's id
	Label      string
	Meta       Meta
	SecretsKey string
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
		return nil, fmt.Errorf("dispatch %s to %s: %w", req.Meta.JobName, contract.ParentJob(req.Label), err)
	}
	c.Log.Info("dispatched", "job", resp.DispatchedJobID, "label", req.Label, "forge_task", req.Meta.TaskID)
	return &Job{ID: resp.DispatchedJobID, Label: req.Label, Meta: req.Meta, SecretsKey: key}, nil
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
		return fmt.Errorf("store job secrets: %w", err)
	}
	return nil
}

func (c *Client) deleteSecrets(ctx context.Context, key string) error {
	_, err := c.API.Variables().Delete(contract.SecretsPrefix+key, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("delete job secrets: %w", err)
	}
	return nil
}

func isNotFound(err error) bool {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) && ue.StatusCode() == 404 {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "404")
}

// Cancel stops the dispatched job; the driver powers its VM off within the
// job's kill_timeout.
func (c *Client) Cancel(ctx context.Context, jobID string) error {
	if _, _, err := c.API.Jobs().Deregister(jobID, false, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("cancel %s: %w", jobID, err)
	}
	c.Log.Info("cancelled", "job", jobID)
	return nil
}

// Finish removes what the job left in Nomad that it no longer needs: its
// secrets. Call it once the job has ended.
func (c *Client) Finish(ctx context.Context, j *Job) error {
	return c.deleteSecrets(ctx, j.SecretsKey)
}

// InFlight lists the dispatched jobs of one forge instance that a shim
// still owes a result, straight from Nomad: a job counts until Finish has
// removed its secrets, so one that ended while no shim watched is found too.
func (c *Client) InFlight(ctx context.Context, forge, instance string) ([]*Job, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	stubs, _, err := c.API.Jobs().List(q)
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	var jobs []*Job
	for _, s := range stubs {
		if s.ParentID == "" || !strings.HasPrefix(s.ParentID, contract.ParentPrefix) {
			continue
		}
		full, _, err := c.API.Jobs().Info(s.ID, q)
		if err != nil {
			return nil, fmt.Errorf("read job %s: %w", s.ID, err)
		}
		m := metaFrom(full.Meta)
		if m.Forge != forge || m.Instance != instance {
			continue
		}
		key := full.Meta[contract.MetaSecretsKey]
		v, _, err := c.API.Variables().Peek(contract.SecretsPrefix+key, q)
		if err != nil {
			return nil, fmt.Errorf("look up secrets of %s: %w", s.ID, err)
		}
		if v == nil {
			continue // finished and reported
		}
		jobs = append(jobs, &Job{ID: s.ID, Label: strings.TrimPrefix(s.ParentID, contract.ParentPrefix), Meta: m, SecretsKey: key})
	}
	sort.Slice(jobs, func(i, j int) bool { return jobs[i].ID < jobs[j].ID })
	return jobs, nil
}
