package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/guest/cache"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Where the cache service is: the shim's own (Forgejo, Gitea) when the
// job got its URL and token, else the forge's results service (GitHub).
const (
	cacheURLName   = "ACTIONS_CACHE_URL"
	cacheTokenName = "ACTIONS_CACHE_TOKEN"
)

// postSaveTimeout bounds the cache saves after the last step.
const postSaveTimeout = 30 * time.Minute

// restoreLimits bound what a restored cache may write.
var restoreLimits = cache.Limits{MaxBytes: 20 << 30, MaxFiles: 1000000}

var cacheDefaults = map[string]string{"restore-keys": "", "fail-on-cache-miss": "false", "lookup-only": "false"}

// cacheSave is an actions/cache step's save, run after the last step.
type cacheSave struct {
	key, version string
	paths        []string
	s            *stepRun
}

// cacheStep is the built-in actions/cache, actions/cache/restore and
// actions/cache/save. Restoring takes the exact key, else the newest
// entry of the first matching restore-keys prefix, of the same paths;
// outputs cache-hit (true only for the exact key), cache-primary-key and
// cache-matched-key. actions/cache saves at the end of a successful job
// unless the exact key was hit.
func (j *Job) cacheStep(ctx context.Context, s *stepRun, action string) error {
	in, err := j.actionInputs(s, cacheDefaults)
	if err != nil {
		return err
	}
	key, paths := in["key"], lines(in["path"])
	if key == "" || len(paths) == 0 {
		return errors.New("Input required and not supplied: key and path")
	}
	version := cache.Version(paths, cache.Compression)
	c, err := j.cacheClient(s)
	if err != nil {
		return err
	}
	if action == contract.ActionCacheSave {
		return j.saveCache(ctx, s.index, c, key, version, paths)
	}
	exact, err := j.restoreCache(ctx, s, c, key, version, paths, in)
	if err == nil && action == contract.ActionCache && !exact {
		j.mu.Lock()
		j.cacheSaves = append(j.cacheSaves, cacheSave{key: key, version: version, paths: paths, s: s})
		j.mu.Unlock()
	}
	return err
}

func lines(v string) []string {
	var out []string
	for _, l := range strings.Split(v, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

func (j *Job) cacheClient(s *stepRun) (*cache.Client, error) {
	url, token := s.env[cacheURLName], j.secrets[cacheTokenName]
	if url == "" || token == "" {
		url, token = s.env[resultsURLName], j.secrets[runtimeTokenName]
	}
	if url == "" || token == "" {
		return nil, errors.New("this job has no cache service: the runner passed no ACTIONS_CACHE_URL/ACTIONS_CACHE_TOKEN or ACTIONS_RESULTS_URL/ACTIONS_RUNTIME_TOKEN")
	}
	return cache.New(url, token, nil)
}

// restoreCache looks the key up and restores a hit; it reports whether
// the hit was the exact key.
func (j *Job) restoreCache(ctx context.Context, s *stepRun, c *cache.Client, key, version string, paths []string, in map[string]string) (bool, error) {
	restoreKeys := lines(in["restore-keys"])
	s.setOutput("cache-primary-key", key)
	hit, ok, err := c.Lookup(ctx, key, restoreKeys, version)
	if err != nil {
		return false, err
	}
	if !ok {
		if isTrue(in["fail-on-cache-miss"]) {
			return false, fmt.Errorf("Failed to restore cache entry. Exiting as fail-on-cache-miss is set. Input key: %s", key)
		}
		j.system(s.index, "Cache not found for input keys: "+strings.Join(append([]string{key}, restoreKeys...), ", "))
		return false, nil
	}
	exact := hit.Key == key
	s.setOutput("cache-matched-key", hit.Key)
	s.setOutput("cache-hit", fmt.Sprint(exact))
	if isTrue(in["lookup-only"]) {
		j.system(s.index, "Cache found and can be restored from key: "+hit.Key)
		return exact, nil
	}
	if err := j.fetchCache(ctx, c, hit, paths); err != nil {
		return false, err
	}
	j.system(s.index, "Cache restored from key: "+hit.Key)
	return exact, nil
}

func (j *Job) fetchCache(ctx context.Context, c *cache.Client, hit cache.Hit, paths []string) error {
	f, err := c.Download(ctx, hit, j.layout.Temp, restoreLimits.MaxBytes)
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if err := cache.Extract(f, j.workspace, j.cacheRoots(paths), restoreLimits); err != nil {
		return fmt.Errorf("restore cache %s: %w", hit.Key, err)
	}
	return nil
}

// cacheRoots are where a restore may write: each path's literal part.
func (j *Job) cacheRoots(paths []string) []string {
	var roots []string
	for _, p := range paths {
		if !strings.HasPrefix(p, "!") {
			roots = append(roots, newUploadPattern(j.workspace, j.home(), p).searchPath())
		}
	}
	return roots
}

// saveCache archives the paths and saves them under key.
func (j *Job) saveCache(ctx context.Context, step int, c *cache.Client, key, version string, paths []string) error {
	files, err := j.cacheFiles(paths)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		j.warning(step, "Path Validation Error: Path(s) specified in the action for caching do(es) not exist, hence no cache is being saved.")
		return nil
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(cache.WriteArchive(pw, files)) }()
	size, err := c.Save(ctx, key, version, pr)
	pr.CloseWithError(errors.New("save stopped"))
	if errors.Is(err, cache.ErrExists) {
		j.warning(step, "Failed to save: Unable to reserve cache with key "+key+", another job may be creating this cache ("+err.Error()+").")
		return nil
	}
	if err != nil {
		return err
	}
	j.system(step, fmt.Sprintf("Cache saved with key: %s (%d bytes)", key, size))
	return nil
}

// cacheFiles are the files the paths find, named relative to the
// workspace as actions/cache's tar names them.
func (j *Job) cacheFiles(spec []string) ([]cache.File, error) {
	found := map[string]bool{}
	var include, exclude []uploadPattern
	for _, p := range spec {
		if x, ok := strings.CutPrefix(p, "!"); ok {
			exclude = append(exclude, newUploadPattern(j.workspace, j.home(), x))
		} else {
			include = append(include, newUploadPattern(j.workspace, j.home(), p))
		}
	}
	for _, p := range include {
		if err := p.walk(found, exclude, true); err != nil {
			return nil, err
		}
	}
	var out []cache.File
	for f := range found {
		rel, err := filepath.Rel(j.workspace, f)
		if err != nil {
			return nil, err
		}
		out = append(out, cache.File{Name: filepath.ToSlash(rel), Path: f})
	}
	return out, nil
}

// postCacheSaves runs the saves actions/cache steps left for the end of
// the job, only when it succeeded, as the action's post step does.
// Failures are warnings: a cache is an optimisation.
func (j *Job) postCacheSaves() {
	ctx, cancel := context.WithTimeout(context.Background(), postSaveTimeout)
	defer cancel()
	j.mu.Lock()
	saves := j.cacheSaves
	j.mu.Unlock()
	if len(saves) == 0 || !j.status().Success() {
		return
	}
	for _, cs := range saves {
		j.system(contract.JobLevel, "Post job cleanup: save cache "+cs.key)
		c, err := j.cacheClient(cs.s)
		if err == nil {
			err = j.saveCache(ctx, contract.JobLevel, c, cs.key, cs.version, cs.paths)
		}
		if err != nil {
			j.warning(contract.JobLevel, "Failed to save: "+err.Error())
		}
	}
}
