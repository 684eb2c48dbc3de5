package runner

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
)

// checkoutDefaults are actions/checkout's input defaults (action.yml).
var checkoutDefaults = map[string]string{
	"repository": "${{ github.repository }}", "token": "${{ github.token }}", "clean": "true",
	"fetch-depth": "1", "fetch-tags": "false", "submodules": "false", "persist-credentials": "true",
	"set-safe-directory": "true", "show-progress": "true",
}

var shaPattern = regexp.MustCompile(`^[0-9a-fA-F]{40}$`)

// checkoutSpec is a resolved checkout.
type checkoutSpec struct {
	url       string // remote URL ("" when only a bundle is known)
	bundle    string // git bundle to fetch from instead of url
	sha, ref  string
	dir       string
	token     string
	depth     int // 0: all history
	submods   string
	fetchTags bool
	clean     bool
	persist   bool
	safeDir   bool
	progress  bool
}

// checkout is the built-in actions/checkout. It runs the system git, as
// actions/checkout does when git is available, with the same inputs
// (repository, ref, token, path, fetch-depth, fetch-tags, submodules,
// clean, persist-credentials, set-safe-directory, show-progress,
// github-server-url) and the same fetch and checkout commands: the exact
// sha of the event for the workflow's repository (from the plan's
// checkout), the ref input otherwise (a branch, a tag, a sha, or the
// default branch). The token never appears on a command line or in the
// log: git gets it as an http.<server>/.extraheader "AUTHORIZATION: basic
// base64(x-access-token:TOKEN)" through GIT_CONFIG_COUNT/KEY/VALUE in its
// environment, and with persist-credentials (the default) the header is
// written into the repository's .git/config by the agent itself, so later
// steps can push, as with actions/checkout. With the plan's
// checkout.bundle the repository is fetched from that git bundle instead
// of the network. Git 2.31 or newer is required (GIT_CONFIG_COUNT).
func (j *Job) checkout(ctx context.Context, s *stepRun) {
	if err := j.runCheckout(ctx, s); err != nil && ctx.Err() == nil {
		j.errorLine(s.index, err.Error())
		s.fail("checkout failed")
	}
}

func (j *Job) runCheckout(ctx context.Context, s *stepRun) error {
	spec, err := j.checkoutSpec(s)
	if err != nil {
		return err
	}
	gitPath, err := which("git", j.searchPath())
	if err != nil {
		return err
	}
	g := &gitRun{j: j, s: s, ctx: ctx, path: gitPath, spec: spec}
	g.env = j.processEnv(s, g.configEnv())
	return g.checkout()
}

// checkoutInputs evaluates the step's with: values over the defaults.
func (j *Job) checkoutInputs(s *stepRun) (map[string]string, error) {
	ee := j.exprEnv(s, s.env)
	in := map[string]string{}
	var unknown []string
	for _, k := range slices.Sorted(maps.Keys(checkoutDefaults)) {
		in[k] = checkoutDefaults[k]
	}
	for _, k := range slices.Sorted(maps.Keys(s.step.With)) {
		in[k] = s.step.With[k]
		if !slices.Contains(contract.CheckoutInputs, k) {
			unknown = append(unknown, "'"+k+"'")
		}
	}
	if len(unknown) > 0 {
		j.warning(s.index, fmt.Sprintf("Unexpected input(s) %s, valid inputs are ['%s']", strings.Join(unknown, ", "), strings.Join(contract.CheckoutInputs, "', '")))
	}
	for k, v := range in {
		val, err := expr.EvaluateTemplate(v, ee)
		if err != nil {
			return nil, fmt.Errorf("input %s: %w", k, err)
		}
		in[k] = expr.ToString(val)
	}
	return in, nil
}

func (j *Job) checkoutSpec(s *stepRun) (checkoutSpec, error) {
	in, err := j.checkoutInputs(s)
	if err != nil {
		return checkoutSpec{}, err
	}
	sp := checkoutSpec{token: in["token"], submods: strings.ToLower(in["submodules"])}
	if sp.depth, err = strconv.Atoi(strings.TrimSpace(in["fetch-depth"])); err != nil || sp.depth < 0 {
		return sp, fmt.Errorf("invalid fetch-depth %q", in["fetch-depth"])
	}
	sp.fetchTags, sp.clean = isTrue(in["fetch-tags"]), isTrue(in["clean"])
	sp.persist, sp.safeDir, sp.progress = isTrue(in["persist-credentials"]), isTrue(in["set-safe-directory"]), isTrue(in["show-progress"])
	if sp.dir, err = j.checkoutDir(in["path"]); err != nil {
		return sp, err
	}
	if err := j.checkoutSource(&sp, in); err != nil {
		return sp, err
	}
	if sp.token != "" {
		// actions/checkout registers its token as a secret (core.setSecret).
		j.masker.AddSecret(sp.token)
		j.masker.AddValue(base64.StdEncoding.EncodeToString([]byte("x-access-token:" + sp.token)))
	}
	return sp, nil
}

func isTrue(v string) bool { return strings.EqualFold(strings.TrimSpace(v), "true") }

// checkoutDir resolves the path input, which must stay in the workspace.
func (j *Job) checkoutDir(p string) (string, error) {
	dir := j.inWorkspace(p)
	if rel, err := filepath.Rel(j.workspace, dir); err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return "", fmt.Errorf("Repository path '%s' is not under '%s'", dir, j.workspace)
	}
	return dir, nil
}

// checkoutSource decides what to fetch (actions/checkout input-helper).
func (j *Job) checkoutSource(sp *checkoutSpec, in map[string]string) error {
	own := stringProp(j.github, "repository")
	repo := strings.TrimSpace(in["repository"])
	if (repo == "" || strings.EqualFold(repo, own)) && j.plan.Checkout != nil {
		c := j.plan.Checkout
		sp.url, sp.bundle, sp.sha, sp.ref = c.URL, c.Bundle, c.SHA, c.Ref
		if sp.sha != "" && sp.ref != "" && !strings.HasPrefix(sp.ref, "refs/") {
			sp.ref = "refs/heads/" + sp.ref // events such as a merged pull request
		}
	} else {
		server := in["github-server-url"]
		if server == "" {
			server = stringProp(j.github, "server_url")
		}
		if server == "" || repo == "" {
			return fmt.Errorf("cannot check out %q: github.server_url and the repository must be known", repo)
		}
		sp.url = strings.TrimSuffix(server, "/") + "/" + repo
	}
	if r := strings.TrimSpace(in["ref"]); r != "" {
		sp.sha, sp.ref = "", r
		if shaPattern.MatchString(r) {
			sp.sha, sp.ref = r, ""
		}
	}
	if sp.url == "" && sp.bundle == "" {
		return errors.New("the plan says nowhere to check the repository out from")
	}
	return nil
}

// gitRun runs the git commands of one checkout.
type gitRun struct {
	j    *Job
	s    *stepRun
	ctx  context.Context
	path string
	env  []string
	spec checkoutSpec
}

// configEnv passes configuration to every git process through the
// environment: the token header (scoped to the server, like
// actions/checkout), and safe.directory so that a workspace owned by
// someone else does not stop git. Configuration already in the agent's
// environment is kept.
func (g *gitRun) configEnv() map[string]string {
	out := map[string]string{"GIT_TERMINAL_PROMPT": "0", "GCM_INTERACTIVE": "Never"}
	n := 0
	if v, ok := g.j.baseValue("GIT_CONFIG_COUNT"); ok {
		n, _ = strconv.Atoi(v)
	}
	add := func(k, v string) {
		out["GIT_CONFIG_KEY_"+strconv.Itoa(n)] = k
		out["GIT_CONFIG_VALUE_"+strconv.Itoa(n)] = v
		n++
	}
	add("safe.directory", "*")
	if key, val := g.authHeader(); key != "" {
		add(key, val)
	}
	out["GIT_CONFIG_COUNT"] = strconv.Itoa(n)
	return out
}

// authHeader is the config key and value carrying the token, or "".
func (g *gitRun) authHeader() (string, string) {
	u, err := url.Parse(g.spec.url)
	if g.spec.token == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", ""
	}
	basic := base64.StdEncoding.EncodeToString([]byte("x-access-token:" + g.spec.token))
	return "http." + u.Scheme + "://" + u.Host + "/.extraheader", "AUTHORIZATION: basic " + basic
}

func (g *gitRun) checkout() error {
	if err := g.prepare(); err != nil {
		return err
	}
	target, err := g.fetch()
	if err != nil {
		return err
	}
	if err := g.switchTo(target); err != nil {
		return err
	}
	if err := g.verify(); err != nil {
		return err
	}
	if err := g.submodules(); err != nil {
		return err
	}
	if err := g.persist(); err != nil {
		return err
	}
	return g.run(g.spec.dir, "log", "-1", "--format=%H")
}

// run runs git with its output in the step's log, as actions/checkout
// prints "[command]…" lines.
func (g *gitRun) run(dir string, args ...string) error {
	g.j.system(g.s.index, "[command]"+g.path+" "+strings.Join(args, " "))
	code, err := g.j.runProcess(g.ctx, procSpec{path: g.path, args: args, dir: dir, env: g.env}, g.j.newOutput(g.s))
	switch {
	case err != nil:
		return err
	case g.ctx.Err() != nil:
		return g.ctx.Err()
	case code != 0:
		return fmt.Errorf("The process '%s' failed with exit code %d", g.path, code)
	}
	return nil
}

// output runs git for its output, which is not logged.
func (g *gitRun) output(args ...string) (string, error) {
	cmd := exec.CommandContext(g.ctx, g.path, args...)
	cmd.Dir, cmd.Env = g.spec.dir, g.env
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("git %s: %w", strings.Join(args, " "), err)
	}
	return strings.TrimSpace(string(out)), nil
}

func (g *gitRun) remoteURL() string {
	if g.spec.url != "" {
		return g.spec.url
	}
	return g.spec.bundle
}

// prepare makes dir a repository with origin at the remote, reusing one
// that is already there when it has the same origin.
func (g *gitRun) prepare() error {
	dir := g.spec.dir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	if _, err := os.Stat(filepath.Join(dir, ".git")); err == nil {
		if origin, _ := g.output("config", "--get", "remote.origin.url"); origin == g.remoteURL() {
			if key, _ := g.authHeader(); key != "" {
				// A header persisted by an earlier checkout would be sent
				// twice; the key alone is not secret.
				g.output("config", "--local", "--unset-all", key)
			}
			if g.spec.clean {
				if err := g.run(dir, "clean", "-ffdx"); err != nil {
					return err
				}
				return g.run(dir, "reset", "--hard", "HEAD")
			}
			return nil
		}
		g.j.system(g.s.index, fmt.Sprintf("Deleting the contents of '%s'", dir))
		if err := emptyDir(dir); err != nil {
			return err
		}
	}
	if err := g.run(dir, "init", dir); err != nil {
		return err
	}
	if err := g.run(dir, "remote", "add", "origin", g.remoteURL()); err != nil {
		return err
	}
	return g.run(dir, "config", "--local", "gc.auto", "0")
}

func emptyDir(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("delete %s: %w", e.Name(), err)
		}
	}
	return nil
}

// persist writes the token header into .git/config for later steps. The
// agent appends it itself: `git config` would put the token on a command
// line.
func (g *gitRun) persist() error {
	if g.spec.safeDir {
		if err := g.run(g.spec.dir, "config", "--global", "--add", "safe.directory", g.spec.dir); err != nil {
			g.j.warning(g.s.index, "Could not add the workspace to git's safe.directory: "+err.Error())
		}
	}
	key, val := g.authHeader()
	if !g.spec.persist || key == "" {
		return nil
	}
	section := strings.TrimSuffix(strings.TrimPrefix(key, "http."), ".extraheader")
	f, err := os.OpenFile(filepath.Join(g.spec.dir, ".git", "config"), os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("persist credentials: %w", err)
	}
	defer f.Close()
	if _, err := fmt.Fprintf(f, "[http %q]\n\textraheader = %s\n", section, val); err != nil {
		return fmt.Errorf("persist credentials: %w", err)
	}
	return nil
}

// verify checks that HEAD is the commit asked for.
func (g *gitRun) verify() error {
	if g.spec.sha == "" {
		return nil
	}
	head, err := g.output("rev-parse", "HEAD")
	if err != nil {
		return err
	}
	if !strings.EqualFold(head, g.spec.sha) {
		return fmt.Errorf("checked out %s, but the commit to build is %s", head, g.spec.sha)
	}
	return nil
}

func (g *gitRun) submodules() error {
	if g.spec.submods != "true" && g.spec.submods != "recursive" {
		return nil
	}
	recursive := g.spec.submods == "recursive"
	sync := []string{"submodule", "sync"}
	update := []string{"-c", "protocol.version=2", "submodule", "update", "--init", "--force"}
	if g.spec.depth > 0 {
		update = append(update, "--depth="+strconv.Itoa(g.spec.depth))
	}
	if recursive {
		sync = append(sync, "--recursive")
		update = append(update, "--recursive")
	}
	if err := g.run(g.spec.dir, sync...); err != nil {
		return err
	}
	return g.run(g.spec.dir, update...)
}
