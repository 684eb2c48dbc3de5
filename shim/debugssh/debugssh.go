// Package debugssh is the shims' side of debug SSH sessions: whether a job
// may have one (the repository opted in, the operator allows it, the run
// is not from a fork), and the triggering user's public keys, fetched
// host-side from the forge, as the plan's debug request.
package debugssh

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// OptInVar is the repository or organisation variable that asks for debug
// sessions.
const OptInVar = "SOLSTICE_DEBUG_SSH"

// Policy is the operator's say, per shim.
type Policy struct {
	Disabled   bool // no sessions from this shim at all
	AllowForks bool // sessions for runs from forks and other repositories' pull requests
}

// Run is what a forge tells about a job, as far as sessions go.
type Run struct {
	OptIn    bool   // the repository asked (OptInVar, or GitHub's debug re-run)
	User     string // who triggered the run
	FromFork bool   // a pull request from another repository
}

// ErrNoSession is wrapped by every reason a job gets no session.
var ErrNoSession = errors.New("no debug session")

// Check says whether run may have a session: nil when it may; an error
// wrapping ErrNoSession, for the job's log, when the repository asked but
// may not have one. A run that did not ask gets ErrNotAsked.
func (p Policy) Check(run Run) error {
	switch {
	case !run.OptIn:
		return ErrNotAsked
	case p.Disabled:
		return fmt.Errorf("%w: the operator turned debug sessions off for this runner", ErrNoSession)
	case run.FromFork && !p.AllowForks:
		return fmt.Errorf("%w: the run comes from a fork or another repository's pull request", ErrNoSession)
	case run.User == "":
		return fmt.Errorf("%w: the forge did not say who triggered the run", ErrNoSession)
	}
	return nil
}

// ErrNotAsked is Check's answer for a run that did not opt in.
var ErrNotAsked = errors.New("debug session not asked for")

// OptedIn reads a variable's value as the opt-in: "true", in any case.
func OptedIn(vars map[string]string) bool {
	return strings.EqualFold(strings.TrimSpace(vars[OptInVar]), "true")
}

// Request turns the keys a forge listed into the plan's request: keys
// that are no plain public key are dropped, at most MaxDebugKeys kept.
// No usable key is an error wrapping ErrNoSession.
func Request(user string, keys []string) (*contract.DebugSSH, error) {
	var ok []string
	for _, k := range keys {
		k = strings.TrimSpace(k)
		if contract.CheckDebugKey(k) == nil && len(ok) < contract.MaxDebugKeys {
			ok = append(ok, k)
		}
	}
	if len(ok) == 0 {
		return nil, fmt.Errorf("%w: the forge user %s has no SSH public keys (add one in the forge's settings)", ErrNoSession, user)
	}
	d := &contract.DebugSSH{User: user, Keys: ok}
	if err := contract.CheckDebugSSH(d); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoSession, err)
	}
	return d, nil
}

// maxKeysBody bounds a forge's key listing.
const maxKeysBody = 256 << 10

// fetchTimeout bounds one key listing.
const fetchTimeout = 20 * time.Second

// get fetches a small document, bounded in time and size.
func get(ctx context.Context, hc *http.Client, u string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("the forge answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeysBody+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxKeysBody {
		return nil, fmt.Errorf("the key listing is over %d bytes", maxKeysBody)
	}
	return body, nil
}

// RunOf reads the triggering user and whether the run comes from a fork
// from a job's github context; optIn is the forge's own opt-in answer.
func RunOf(github map[string]any, optIn bool) Run {
	return Run{OptIn: optIn, User: triggeringUser(github), FromFork: fromFork(github)}
}

// triggeringUser is who started the run: the re-runner of a re-run, else
// the actor.
func triggeringUser(github map[string]any) string {
	if u := text(github["triggering_actor"]); u != "" {
		return u
	}
	return text(github["actor"])
}

// fromFork reports a pull request whose head lives in another repository.
func fromFork(github map[string]any) bool {
	ev, _ := github["event"].(map[string]any)
	pr, _ := ev["pull_request"].(map[string]any)
	if pr == nil {
		return false
	}
	head, _ := pr["head"].(map[string]any)
	repo, _ := head["repo"].(map[string]any)
	return text(repo["full_name"]) != text(github["repository"])
}

func text(v any) string {
	s, _ := v.(string)
	return s
}

// WebKeys lists a user's public keys from the forge's web server at
// /{user}.keys, one authorized_keys line each: GitHub, GHES, Gitea and
// Forgejo all serve it without a token (Gitea's /api/v1/users/{name}/keys
// wants one, which the shims do not have). Comment lines are skipped.
func WebKeys(ctx context.Context, hc *http.Client, webURL, user string) ([]string, error) {
	u, err := url.JoinPath(webURL, url.PathEscape(user)+".keys")
	if err != nil {
		return nil, fmt.Errorf("list %s's keys: %w", user, err)
	}
	body, err := get(ctx, hc, u)
	if err != nil {
		return nil, fmt.Errorf("list %s's keys: %w", user, err)
	}
	return keyLines(body), nil
}

// FileKeys lists the public keys in dir's *.pub files (solstice run's
// ~/.ssh), one authorized_keys line each, comment lines skipped. Each file
// is read up to the same bound as a forge's listing.
func FileKeys(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.pub"))
	if err != nil {
		return nil, fmt.Errorf("list %s/*.pub: %w", dir, err)
	}
	var keys []string
	for _, f := range files {
		body, err := readBounded(f)
		if err != nil {
			return nil, err
		}
		keys = append(keys, keyLines(body)...)
	}
	return keys, nil
}

func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %w", path, err)
	}
	defer f.Close()
	body, err := io.ReadAll(io.LimitReader(f, maxKeysBody+1))
	if err != nil {
		return nil, fmt.Errorf("read public key %s: %w", path, err)
	}
	if len(body) > maxKeysBody {
		return nil, fmt.Errorf("public key file %s is over %d bytes", path, maxKeysBody)
	}
	return body, nil
}

// keyLines splits a key listing into its keys, skipping blank and comment
// lines.
func keyLines(body []byte) []string {
	var keys []string
	for _, l := range strings.Split(string(body), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			keys = append(keys, l)
		}
	}
	return keys
}
