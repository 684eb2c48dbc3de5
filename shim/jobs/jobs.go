// Package jobs manages the parent jobs, one per runs-on label: it registers
// them from the jobspecs directory and reads the label catalog (labels and
// their aliases) back from Nomad, which is where the shims learn which
// runs-on values they can serve.
package jobs

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
}

// Sync parses each jobspec file through Nomad and registers it. A file that
// is not a parent job (no solstice_label meta, wrong name) is refused, so a
// typo cannot register a job the shims would never dispatch.
func Sync(ctx context.Context, c *api.Client, files []string) ([]Synced, error) {
	var done []Synced
	for _, f := range files {
		s, err := syncOne(ctx, c, f)
		if err != nil {
			return done, err
		}
		done = append(done, s)
	}
	return done, nil
}

func syncOne(ctx context.Context, c *api.Client, file string) (Synced, error) {
	src, err := os.ReadFile(file)
	if err != nil {
		return Synced{}, fmt.Errorf("read jobspec: %w", err)
	}
	job, err := c.Jobs().ParseHCLOpts(&api.JobsParseRequest{JobHCL: string(src), Canonicalize: true})
	if err != nil {
		return Synced{}, fmt.Errorf("%s: %w", file, err)
	}
	label := job.Meta[contract.MetaLabel]
	switch {
	case label == "":
		return Synced{}, fmt.Errorf("%s: job %q has no meta %s: it is not a Solstice parent job", file, *job.ID, contract.MetaLabel)
	case *job.ID != contract.ParentJob(label):
		return Synced{}, fmt.Errorf("%s: a parent job for label %q must be named %q, not %q", file, label, contract.ParentJob(label), *job.ID)
	case job.ParameterizedJob == nil:
		return Synced{}, fmt.Errorf("%s: job %q is not parameterized", file, *job.ID)
	}
	if _, _, err := c.Jobs().Register(job, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return Synced{}, fmt.Errorf("%s: register %s: %w", file, *job.ID, err)
	}
	return Synced{File: file, JobID: *job.ID, Label: label}, nil
}

// Files lists the jobspecs of a directory.
func Files(dir string) ([]string, error) {
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
// its canonical label.
func Catalog(ctx context.Context, c *api.Client) (map[string]string, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	stubs, _, err := c.Jobs().List(q)
	if err != nil {
		return nil, fmt.Errorf("list parent jobs: %w", err)
	}
	cat := map[string]string{}
	for _, s := range stubs {
		if s.ParentID != "" || !strings.HasPrefix(s.ID, contract.ParentPrefix) || s.Stop {
			continue
		}
		job, _, err := c.Jobs().Info(s.ID, q)
		if err != nil {
			return nil, fmt.Errorf("read parent job %s: %w", s.ID, err)
		}
		label := job.Meta[contract.MetaLabel]
		if label == "" || job.ParameterizedJob == nil {
			continue
		}
		cat[label] = label
		for _, a := range strings.Split(job.Meta[contract.MetaAliases], ",") {
			if a = strings.TrimSpace(a); a != "" {
				cat[a] = label
			}
		}
	}
	return cat, nil
}
