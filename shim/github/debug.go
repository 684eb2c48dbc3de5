package github

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/debuglock"
	"github.com/solstice-ci/solstice/shim/debugssh"
	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// debugVariables are the job message's variables set by a re-run with
// "Enable debug logging" (actions/runner's Constants.Variables).
var debugVariables = []string{"ACTIONS_STEP_DEBUG", "ACTIONS_RUNNER_DEBUG", "system.debug"}

// debugRerun reports whether the job is a re-run with debug logging.
func debugRerun(msg *protocol.JobMessage) bool {
	for _, name := range debugVariables {
		if strings.EqualFold(strings.TrimSpace(msg.Variables[name].Value), "true") {
			return true
		}
	}
	return false
}

// optedIn is the job's opt-in: a debug re-run, or SOLSTICE_DEBUG_SSH=true
// among the repository's or organisation's variables.
func optedIn(msg *protocol.JobMessage) bool {
	if debugRerun(msg) {
		return true
	}
	vars := map[string]string{}
	for k, v := range contextMap(msg, "vars") {
		if s, ok := v.(string); ok {
			vars[k] = s
		}
	}
	return debugssh.OptedIn(vars)
}

// debugRequest decides whether the job gets a debug session if it fails,
// and fetches the triggering user's keys from GitHub's web server. note is
// the log's line about it ("" when the job did not ask).
func (t *task) debugRequest(ctx context.Context) (*contract.DebugSSH, string) {
	run := debugssh.RunOf(contextMap(t.msg, "github"), optedIn(t.msg))
	err := t.sh.cfg.Debug.Check(run)
	if errors.Is(err, debugssh.ErrNotAsked) {
		return nil, ""
	}
	var req *contract.DebugSSH
	if err == nil {
		var keys []string
		keys, err = debugssh.WebKeys(ctx, t.sh.cfg.HTTP, webRoot(t.sh.cfg.URL), run.User)
		if err == nil {
			req, err = debugssh.Request(run.User, keys)
		}
	}
	if err != nil {
		t.log.Info("no debug session for the job", "why", err)
		return nil, "Debug SSH: " + err.Error() + "."
	}
	return req, "Debug SSH: if this job fails, its VM is kept for a session with " + run.User + "'s SSH keys."
}

// webRoot is the GitHub web server of a registration URL
// (https://github.com/OWNER/REPO → https://github.com/), where users'
// keys are listed.
func webRoot(registration string) string {
	u, err := url.Parse(registration)
	if err != nil {
		return registration
	}
	return u.Scheme + "://" + u.Host + "/"
}

// onDebugEvent handles a debug session's events (see debuglock.Guard) and
// reports whether the event goes into the log.
func (t *task) onDebugEvent(ctx context.Context, ev contract.Event) bool {
	if t.debug == nil {
		// Keyed by GitHub's host, not the registration URL (a runner may be
		// registered for the organisation or for the repository): every
		// shim shares a repository's one session.
		repo := strings.TrimRight(webRoot(t.sh.cfg.URL), "/") + " " + t.job.Meta.Repository
		t.debug = &debuglock.Guard{Vars: t.sh.cfg.DebugLock, Repository: repo, Holder: t.job.ID}
	}
	v, err := t.debug.On(ctx, ev, time.Now())
	if err != nil {
		t.log.Warn("debug lock", "error", err)
	}
	if v.Refusal != "" {
		t.rep.with(func(*book) { t.r.debugLine(ev.Time, v.Refusal) })
		t.log.Info("no debug session", "why", v.Refusal)
		if err := t.tracker().Cancel(ctx); err != nil {
			t.log.Warn("could not stop the job after refusing its debug session", "error", err)
		}
	}
	if v.Opened {
		t.sh.metrics.debugSession(1)
		t.log.Info("debug session open; the runner stays busy until it ends", "message", ev.Message)
	}
	if v.Closed {
		t.sh.metrics.debugSession(-1)
	}
	return v.Show
}
