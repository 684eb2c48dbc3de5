package nomad

// The parent jobs, one per runs-on label: Sync registers them from the
// jobspecs directory and Catalog reads the label catalog (labels and
// their aliases) back from Nomad, which is where the shims learn which
// runs-on values they can serve.

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Synced is one registered parent job.
type Synced struct {
	File  string
	JobID string
	Label string
	// Skipped is set for a test label that was not asked for (see
	// contract.MetaTestLabel): parsed and checked, not registered.
	Skipped bool
}

// Sync parses each jobspec file through Nomad and registers it. A file that
// is not a parent job (no solstice_label meta, wrong name) is refused, so a
// typo cannot register a job the shims would never dispatch.
func (c *Client) Sync(ctx context.Context, files []string) ([]Synced, error) {
	return c.SyncLabels(ctx, files, true)
}

// SyncLabels is Sync that registers the test labels (contract.MetaTestLabel)
// only withTest; the others it returns as Skipped.
func (c *Client) SyncLabels(ctx context.Context, files []string, withTest bool) ([]Synced, error) {
	var done []Synced
	for _, f := range files {
		s, err := c.syncOne(ctx, f, withTest)
		if err != nil {
			return done, err
		}
		done = append(done, s)
	}
	return done, nil
}

func (c *Client) syncOne(ctx context.Context, file string, withTest bool) (Synced, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return Synced{}, fmt.Errorf("read jobspec: %w", err)
	}
	job, err := c.API.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(src), Canonicalize: true})
	if err != nil {
		return Synced{}, fmt.Errorf("%s: %w", file, explainDenied(err, "parsing a jobspec needs the parse-job capability in the namespace"))
	}
	label := job.Meta[contract.MetaLabel]
	switch {
	case label == "":
		return Synced{}, fmt.Errorf("%s: job %q has no meta %s: it is not a Solstice parent job", file, *job.ID, contract.MetaLabel)
	case *job.ID != contract.ParentJob(label):
		return Synced{}, fmt.Errorf("%s: a parent job for label %q must be named %q, not %q", file, label, contract.ParentJob(label), *job.ID)
	case job.ParameterizedJob == nil:
		return Synced{}, fmt.Errorf("%s: job %q is not parameterized", file, *job.ID)
	case !hasGroup(job, contract.GroupName):
		return Synced{}, fmt.Errorf("%s: job %q has no group %q: the shims stop a dispatch by scaling that group", file, *job.ID, contract.GroupName)
	}
	if job.Meta[contract.MetaTestLabel] == "true" && !withTest {
		return Synced{File: file, JobID: *job.ID, Label: label, Skipped: true}, nil
	}
	if _, _, err := c.API.Jobs().Register(job, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return Synced{}, fmt.Errorf("%s: register %s: %w", file, *job.ID, explainDenied(err, "registering a job needs the submit-job capability in the namespace"))
	}
	return Synced{File: file, JobID: *job.ID, Label: label}, nil
}

// ParentFiles lists the parent jobspecs of a directory.
func ParentFiles(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.nomad.hcl"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no *.nomad.hcl files in %s", dir)
	}
	sort.Strings(files)
	return files, nil
}

// Catalog maps every label and alias that a registered parent job serves to
// its canonical label. It costs one request: Nomad lists the jobs' meta.
func (c *Client) Catalog(ctx context.Context) (map[string]string, error) {
	stubs, err := c.listJobs(ctx)
	if err != nil {
		return nil, fmt.Errorf("parent jobs: %w", err)
	}
	cat := map[string]string{}
	for _, s := range stubs {
		if s.ParentID != "" || !strings.HasPrefix(s.ID, contract.ParentPrefix) || s.Stop {
			continue
		}
		meta, parameterized, err := c.jobMeta(ctx, s)
		if err != nil {
			return nil, fmt.Errorf("parent job: %w", err)
		}
		label := meta[contract.MetaLabel]
		if label == "" || !parameterized {
			continue
		}
		cat[label] = label
		for _, a := range strings.Split(meta[contract.MetaAliases], ",") {
			if a = strings.TrimSpace(a); a != "" {
				cat[a] = label
			}
		}
	}
	return cat, nil
}

func hasGroup(job *api.Job, name string) bool {
	for _, g := range job.TaskGroups {
		if g.Name != nil && *g.Name == name {
			return true
		}
	}
	return false
}
