package plugin

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/task"
	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// launchJob starts the job plan in the guest; the handle follows it.
func (l *launch) launchJob(ctx context.Context, h *task.Handle) error {
	agent, err := l.d.agentBinary(l.img.OS)
	if err != nil {
		return err
	}
	events := l.eventsPath()
	h.UpdateState(func(s *task.State) { s.Events = events })
	l.st.Events = events
	r, err := l.d.newJob(l.vms, h, l.cfg)
	if err != nil {
		return err
	}
	bundle, err := l.bundle(ctx)
	if err != nil {
		return err
	}
	files := jobrun.Files{
		Agent:   agent,
		Plan:    l.taskPath(l.tc.Plan),
		Secrets: l.taskPath(l.tc.Secrets),
		Bundle:  bundle,
	}
	l.d.emit(l.cfg, "Running job", "the guest agent runs the job plan")
	if err := r.Launch(ctx, files); err != nil {
		return fmt.Errorf("launch the job in the guest: %w", err)
	}
	h.SetJob(r)
	return nil
}

// bundle returns the repository bundle's local path, downloading it first
// when the task config gives a URL (solstice run serves its bundle that way,
// so the guest itself never needs a route to the machine it came from).
func (l *launch) bundle(ctx context.Context) (string, error) {
	b := l.tc.Bundle
	if !strings.HasPrefix(b, "http://") && !strings.HasPrefix(b, "https://") {
		return l.taskPath(b), nil
	}
	dst := filepath.Join(l.st.VMDir, "repo.bundle")
	if err := download(ctx, b, dst); err != nil {
		return "", fmt.Errorf("fetch the repository bundle: %w", err)
	}
	return dst, nil
}

func download(ctx context.Context, url, dst string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", redactQuery(url), resp.Status)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// redactQuery drops a URL's query, where access tokens travel.
func redactQuery(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}

// eventsPath is alloc/solstice/<task>/events.jsonl, where the shims follow
// the job (dispatch.EventsPath names the same file from the API's side).
func (l *launch) eventsPath() string {
	return filepath.Join(l.cfg.AllocDir, contract.EventsPath(l.cfg.Name))
}

// taskPath resolves a path from the task config against the task dir.
func (l *launch) taskPath(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(l.cfg.TaskDir().Dir, p)
}

// agentBinary finds the solstice-guest build for a guest OS: in
// guest_agent_dir, or next to the plugin binary.
func (d *Driver) agentBinary(os string) (string, error) {
	dir := d.cfg().GuestAgentDir
	if dir == "" {
		exe, err := osExecutable()
		if err != nil {
			return "", fmt.Errorf("locate the guest agent: %w", err)
		}
		dir = filepath.Dir(exe)
	}
	p := filepath.Join(dir, "solstice-guest-"+os+"-amd64")
	if _, err := osStat(p); err != nil {
		return "", fmt.Errorf("guest agent for %s: %w (set guest_agent_dir in the plugin config)", os, err)
	}
	return p, nil
}

// newJob makes the runner that follows the task's job, writing its
// readable form to the task's stdout.
func (d *Driver) newJob(vms vm.Provider, h *task.Handle, cfg *drivers.TaskConfig) (vm.Job, error) {
	out, err := openConsole(cfg.StdoutPath)
	if err != nil {
		return nil, err
	}
	return vms.Job(vm.JobSpec{
		Log:    d.log.With("task", cfg.Name, "alloc", cfg.AllocID),
		SSH:    h.SSH,
		Events: h.State().Events,
		Out:    out,
	}), nil
}

var (
	osExecutable = os.Executable
	osStat       = os.Stat
)

// reportInfraError writes the failure as the job's only event, so whoever
// follows the job's events (a shim, solstice run) learns why it never ran
// instead of waiting for a stream that will not come.
func (l *launch) reportInfraError(cause error) {
	if l.tc.Plan == "" {
		return
	}
	p := l.eventsPath()
	if st, err := os.Stat(p); err == nil && st.Size() > 0 {
		return // the agent's own stream exists; never break its sequence
	}
	if err := jobrun.WriteInfraError(p, cause.Error()); err != nil {
		l.log.Warn("could not record the failure in the events file", "error", err)
	}
}
