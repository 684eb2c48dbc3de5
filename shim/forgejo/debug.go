package forgejo

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/debuglock"
	"github.com/solstice-ci/solstice/shim/debugssh"
)

// debugRequest decides whether a task's job gets a debug session if it
// fails, and fetches the triggering user's keys for it. note is the forge
// log's line about it ("" for a repository that did not ask).
func (rt *Runner) debugRequest(ctx context.Context, pt *runnerv1.Task) (req *contract.DebugSSH, note string) {
	run := debugssh.RunOf(githubContext(pt), debugssh.OptedIn(pt.Vars))
	err := rt.cfg.Debug.Check(run)
	if errors.Is(err, debugssh.ErrNotAsked) {
		return nil, ""
	}
	if err == nil {
		var keys []string
		keys, err = debugssh.WebKeys(ctx, rt.keysClient(), rt.cfg.URL, run.User)
		if err == nil {
			req, err = debugssh.Request(run.User, keys)
		}
	}
	if err != nil {
		rt.log.Info("no debug session for the task", "task", pt.Id, "why", err)
		return nil, "Debug SSH: " + err.Error() + "."
	}
	return req, "Debug SSH: if this job fails, its VM is kept for a session with " + run.User + "'s SSH keys."
}

func (rt *Runner) keysClient() *http.Client {
	if rt.cfg.HTTP != nil {
		return rt.cfg.HTTP
	}
	return &http.Client{Timeout: 30 * time.Second}
}

// onDebugEvent handles a debug session's events: the session is this
// repository's only one (debuglock) or the job is stopped with a line
// saying why. It reports whether the event is to be rendered.
func (t *task) onDebugEvent(ctx context.Context, ev contract.Event) bool {
	if t.debug == nil {
		// Keyed by the forge, not the runner (Meta.Instance names both):
		// every runner of the forge shares a repository's one session.
		repo := strings.TrimRight(t.rt.cfg.URL, "/") + " " + t.job.Meta.Repository
		t.debug = &debuglock.Guard{Vars: t.rt.cfg.DebugLock, Repository: repo, Holder: t.job.ID}
	}
	v, err := t.debug.On(ctx, ev, time.Now())
	if err != nil {
		t.log.Warn("debug lock", "error", err)
	}
	switch {
	case v.Refusal != "":
		t.r.row(ev.Time, "%s", v.Refusal)
		t.log.Info("no debug session", "why", v.Refusal)
		if err := t.tracker().Cancel(ctx); err != nil {
			t.log.Warn("could not stop the job after refusing its debug session", "error", err)
		}
	case v.Opened:
		t.rt.metrics.debugSession(1)
		t.log.Info("debug session open; the task holds its runner slot until it ends", "message", ev.Message)
	case v.Closed:
		t.rt.metrics.debugSession(-1)
	}
	return v.Show
}
