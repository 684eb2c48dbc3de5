package github

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomadvar"
)

// Variable prefixes of the shim's documents.
const (
	runnersPrefix = "solstice/runners/github/"
	jobsPrefix    = "solstice/jobs/github/"
)

// Record is an acquired job as the shim keeps it until GitHub has its
// conclusion. It holds the job message (and with it the job token), so
// it lives only in a Nomad Variable.
type Record struct {
	JobID          string          `json:"job_id"` // GitHub's job id
	Runner         string          `json:"runner"` // the runner that acquired it
	RunServiceURL  string          `json:"run_service_url"`
	BillingOwnerID string          `json:"billing_owner_id,omitempty"`
	Acquired       time.Time       `json:"acquired"`
	Message        json.RawMessage `json:"message"`
	// NomadJob is the dispatched job's id, once dispatched: a record whose
	// dispatch Nomad no longer lists in flight is over.
	NomadJob string `json:"nomad_job,omitempty"`
	// Uploaded lists the step numbers whose logs GitHub has stored.
	Uploaded []int `json:"uploaded,omitempty"`
	// JobLog is set once the job log is stored.
	JobLog bool `json:"job_log,omitempty"`
	// DebugNote is the log's line about a debug session, decided at
	// dispatch.
	DebugNote string `json:"debug_note,omitempty"`
}

func (r *Record) uploaded(n int) bool {
	for _, u := range r.Uploaded {
		if u == n {
			return true
		}
	}
	return false
}

// Store keeps runner credentials and job records of one GitHub scope (an
// owner, a repository or an enterprise) in Nomad Variables:
// solstice/runners/github/<scope>/<runner> and
// solstice/jobs/github/<scope>/<job id>.
type Store struct {
	Vars  nomadvar.Store
	Scope string
}

// ScopeOf names the scope of a GitHub URL: its host and path with the
// characters Nomad does not allow in paths replaced.
func ScopeOf(githubURL string) (string, error) {
	u, err := url.Parse(githubURL)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", fmt.Errorf("GitHub URL %q: want https://HOST/OWNER[/REPO]", githubURL)
	}
	host := strings.NewReplacer(".", "-", ":", "_").Replace(u.Host)
	return nomadvar.Sanitize(host + "/" + strings.Trim(u.Path, "/")), nil
}

func (s *Store) runnerPath(name string) string {
	return runnersPrefix + s.Scope + "/" + nomadvar.Sanitize(name)
}

func (s *Store) jobPath(jobID string) string {
	return jobsPrefix + s.Scope + "/" + nomadvar.Sanitize(jobID)
}

// LoadRunner reads a runner's credentials; nil when it is not registered.
func (s *Store) LoadRunner(ctx context.Context, name string) (*protocol.Credentials, error) {
	var c protocol.Credentials
	ok, err := s.Vars.Load(ctx, s.runnerPath(name), &c)
	if err != nil || !ok {
		return nil, err
	}
	return &c, nil
}

// SaveRunner stores a runner's credentials.
func (s *Store) SaveRunner(ctx context.Context, c *protocol.Credentials) error {
	return s.Vars.Save(ctx, s.runnerPath(c.RunnerName), c)
}

// DeleteRunner forgets a runner.
func (s *Store) DeleteRunner(ctx context.Context, name string) error {
	return s.Vars.Delete(ctx, s.runnerPath(name))
}

// Runners lists the names of the registered runners.
func (s *Store) Runners(ctx context.Context) ([]string, error) {
	paths, err := s.Vars.List(ctx, runnersPrefix+s.Scope+"/")
	if err != nil {
		return nil, err
	}
	var names []string
	for _, p := range paths {
		if name, ok := s.inScope(p, runnersPrefix); ok {
			names = append(names, name)
		}
	}
	return names, nil
}

// inScope returns the last element of a path listed under prefix+scope,
// or false for a path of a narrower scope below it (an owner's scope is a
// prefix of its repositories' scopes).
func (s *Store) inScope(path, prefix string) (string, bool) {
	rest := strings.TrimPrefix(path, prefix+s.Scope+"/")
	return rest, rest != "" && !strings.Contains(rest, "/")
}

// CheckRunnerName refuses a runner name whose Variable path Nomad would
// refuse.
func (s *Store) CheckRunnerName(name string) error {
	if err := nomadvar.CheckPath(s.runnerPath(name)); err != nil {
		return fmt.Errorf("runner name %q: %w: use a shorter name", name, err)
	}
	return nil
}

// SaveJob writes a job record.
func (s *Store) SaveJob(ctx context.Context, r *Record) error {
	return s.Vars.Save(ctx, s.jobPath(r.JobID), r)
}

// DeleteJob forgets a job whose conclusion GitHub has.
func (s *Store) DeleteJob(ctx context.Context, jobID string) error {
	return s.Vars.Delete(ctx, s.jobPath(jobID))
}

// Jobs reads every job record of the scope.
func (s *Store) Jobs(ctx context.Context) ([]*Record, error) {
	paths, err := s.Vars.List(ctx, jobsPrefix+s.Scope+"/")
	if err != nil {
		return nil, err
	}
	var out []*Record
	for _, p := range paths {
		if _, ok := s.inScope(p, jobsPrefix); !ok {
			continue
		}
		var r Record
		ok, err := s.Vars.Load(ctx, p, &r)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, &r)
		}
	}
	return out, nil
}
