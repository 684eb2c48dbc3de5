package forgejo

import (
	"context"
	"errors"
	"net/http"
	"time"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/debuglock"
	"github.com/solstice-ci/solstice/shim/debugssh"
	"github.com/solstice-ci/solstice/shim/forge"
)

// debugRequest decides whether a task's job gets a debug session if it
// fails, and fetches the triggering user's keys for it. note is the forge
// log's line about it ("" for a repository that did not ask).
func (rt *Runner) debugRequest(ctx context.Context, pt *runnerv1.Task) (req *contract.DebugSSH, note string) {
	github := githubContext(pt)
	run := debugssh.Run{OptIn: debugssh.OptedIn(pt.Vars), User: triggeringUser(github), FromFork: fromFork(github)}
	err := rt.cfg.Debug.Check(run)
	if errors.Is(err, debugssh.ErrNotAsked) {
		return nil, ""
	}
	if err == nil {
		var keys []string
		keys, err = debugssh.GiteaKeys(ctx, rt.keysClient(), rt.cfg.URL, run.User)
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

// triggeringUser is who started the run: the re-runner of a re-run, else
// the actor.
func triggeringUser(github map[string]any) string {
	if u := forge.Text(github["triggering_actor"]); u != "" {
		return u
	}
	return forge.Text(github["actor"])
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
	return forge.Text(repo["full_name"]) != forge.Text(github["repository"])
}

// onDebugEvent handles a debug session's events: the session is this
// repository's only one (debuglock) or the job is stopped with a line
// saying why. It reports whether the event is to be rendered.
func (t *task) onDebugEvent(ctx context.Context, ev contract.Event) bool {
	switch {
	case t.debugRefused:
		return false // the driver's own "stopped" end of a refused session
	case ev.Type == contract.TypeDebugEnded:
		t.releaseDebug(ctx)
		if t.debugOpen {
			t.debugOpen = false
			t.rt.metrics.debugSession(-1)
		}
		return true
	case ev.Debug == nil || t.rt.cfg.DebugLock == nil:
		t.openDebug(ev)
		return true
	}
	lease, err := debuglock.Acquire(ctx, t.rt.cfg.DebugLock, t.repository(), t.job.ID, ev.Debug.Expires, time.Now())
	if err != nil {
		t.debugRefused = true
		t.r.row(ev.Time, "No debug session: %v.", err)
		t.log.Info("no debug session", "why", err)
		if err := t.tracker().Cancel(ctx); err != nil {
			t.log.Warn("could not stop the job after refusing its debug session", "error", err)
		}
		return false
	}
	t.debugLease = lease
	t.openDebug(ev)
	return true
}

func (t *task) openDebug(ev contract.Event) {
	t.debugOpen = true
	t.rt.metrics.debugSession(1)
	t.log.Info("debug session open; the task holds its runner slot until it ends", "message", ev.Message)
}

func (t *task) releaseDebug(ctx context.Context) {
	if t.debugLease == nil {
		return
	}
	if err := debuglock.Release(ctx, t.rt.cfg.DebugLock, t.debugLease); err != nil {
		t.log.Warn("could not release the debug lock; it lapses at its expiry", "error", err)
	}
	t.debugLease = nil
}

// repository names the job's repository across forges and runners.
func (t *task) repository() string {
	return t.job.Meta.Instance + " " + t.job.Meta.Repository
}
