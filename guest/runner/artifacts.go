package runner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/guest/artifact"
	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Where the forge's artifact service is, as the runners pass it to
// actions: the results URL in the env, the runtime token as a secret.
const (
	resultsURLName   = "ACTIONS_RESULTS_URL"
	runtimeTokenName = "ACTIONS_RUNTIME_TOKEN"
)

// The official actions' input defaults (action.yml of v4).
var (
	uploadDefaults = map[string]string{
		"name": "artifact", "if-no-files-found": "warn", "retention-days": "0",
		"compression-level": "6", "overwrite": "false", "include-hidden-files": "false",
	}
	downloadDefaults = map[string]string{"merge-multiple": "false"}
)

// runAction runs a built-in action step.
func (j *Job) runAction(ctx context.Context, s *stepRun) {
	var err error
	switch contract.BuiltinAction(s.step.Uses) {
	case contract.ActionCheckout:
		j.checkout(ctx, s)
		return
	case contract.ActionUploadArtifact:
		err = j.uploadArtifact(ctx, s)
	case contract.ActionDownloadArtifact:
		err = j.downloadArtifact(ctx, s)
	case contract.ActionCache, contract.ActionCacheRestore, contract.ActionCacheSave:
		err = j.cacheStep(ctx, s, contract.BuiltinAction(s.step.Uses))
	default:
		err = fmt.Errorf("%s", contract.UnsupportedActionError(s.step.Uses))
	}
	if err != nil && ctx.Err() == nil {
		j.errorLine(s.index, err.Error())
		s.fail(contract.BuiltinAction(s.step.Uses) + " failed")
	}
}

// actionInputs evaluates the step's with: values over defaults.
func (j *Job) actionInputs(s *stepRun, defaults map[string]string) (map[string]string, error) {
	ee := j.exprEnv(s, s.env)
	in := maps.Clone(defaults)
	maps.Copy(in, s.step.With)
	for _, k := range slices.Sorted(maps.Keys(in)) {
		val, err := expr.EvaluateTemplate(in[k], ee)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", k, err)
		}
		in[k] = strings.TrimSpace(expr.ToString(val))
	}
	return in, nil
}

// artifactClient connects to the forge's artifact service for this job.
func (j *Job) artifactClient(s *stepRun) (*artifact.Client, error) {
	token := j.secrets[runtimeTokenName]
	results := s.env[resultsURLName]
	if results == "" {
		results, _ = j.baseValue(resultsURLName)
	}
	if token == "" || results == "" {
		return nil, fmt.Errorf("artifacts need the forge's %s and %s, which this job did not receive", resultsURLName, runtimeTokenName)
	}
	c, err := artifact.New(results, token)
	if err != nil {
		return nil, fmt.Errorf("connect to the artifact service: %w", err)
	}
	return c, nil
}

// intInput parses a whole-number input within [lo, hi].
func intInput(in map[string]string, name string, lo, hi int) (int, error) {
	n, err := strconv.Atoi(in[name])
	if err != nil || n < lo || n > hi {
		return 0, fmt.Errorf("input %s: want a whole number from %d to %d, got %q", name, lo, hi, in[name])
	}
	return n, nil
}

// home is the steps' HOME, where ~ in path inputs points.
func (j *Job) home() string {
	if h, ok := j.baseValue("HOME"); ok && h != "" {
		return h
	}
	h, _ := os.UserHomeDir()
	return h
}

// localPath resolves a path input: ~ is the home directory, relative
// paths are under the workspace.
func (j *Job) localPath(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		p = filepath.Join(j.home(), strings.TrimPrefix(p[1:], "/"))
	}
	if p == "" {
		return j.workspace
	}
	if !filepath.IsAbs(p) {
		return filepath.Join(j.workspace, p)
	}
	return filepath.Clean(p)
}

// artifactURL is where the forge's UI shows an artifact of this run.
func (j *Job) artifactURL(a artifact.Uploaded) string {
	server, repo, run := stringProp(j.github, "server_url"), stringProp(j.github, "repository"), stringProp(j.github, "run_id")
	if server == "" || repo == "" || run == "" {
		return ""
	}
	return fmt.Sprintf("%s/%s/actions/runs/%s/artifacts/%d", strings.TrimSuffix(server, "/"), repo, run, a.ID)
}

// matchName matches an artifact name against download-artifact's
// pattern input (a glob; empty matches all).
func matchName(pattern, name string) (bool, error) {
	if pattern == "" {
		return true, nil
	}
	ok, err := path.Match(pattern, name)
	if err != nil {
		return false, fmt.Errorf("input pattern %q: %w", pattern, err)
	}
	return ok, nil
}
