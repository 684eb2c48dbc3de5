package plugin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/guestagents"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/safehttp"
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
	plan, err := l.guestPlan()
	if err != nil {
		return err
	}
	files := jobrun.Files{
		Agent:     agent,
		AgentDisk: l.agentDisk,
		// A clone's template put the agent in place (see placeAgent).
		AgentInPlace: l.clone != nil,
		Port:         l.port,
		NoDisk:       l.noDisk,
		AsRoot:       l.img.User == "root",
		Plan:         plan,
		Secrets:      l.inputs.Secrets,
		Bundle:       bundle,
	}
	l.d.emit(l.cfg, "Running job", "the guest agent runs the job plan")
	shipped, err := r.Launch(ctx, files)
	if err != nil {
		return fmt.Errorf("launch the job in the guest: %w", err)
	}
	// Which way the agent came in; the benchmark's "SSH → agent running"
	// phase ends here.
	l.d.emit(l.cfg, "Agent started", "the guest agent was "+string(shipped))
	h.SetJob(r)
	l.setDebug(h, l.machine)
	return nil
}

// bundle returns the repository bundle's local path, downloading it first
// when the task config gives a URL (solstice run serves its bundle that way,
// so the guest itself never needs a route to the machine it came from).
func (l *launch) bundle(ctx context.Context) (string, error) {
	u := l.inputs.BundleURL
	if u == nil {
		return l.inputs.Bundle, nil
	}
	dst := filepath.Join(l.st.VMDir, "repo.bundle")
	if err := l.downloadBundle(ctx, u, dst); err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("fetch the repository bundle from %s: %w", safehttp.Redact(u), err)
	}
	return dst, nil
}

// downloadBundle fetches u into dst host-side, within bundle_hosts (each
// redirect is checked too), with no proxy (so the address checks see the
// real server) and at most max_bundle_size bytes.
func (l *launch) downloadBundle(ctx context.Context, u *url.URL, dst string) error {
	client := safehttp.NewClient(safehttp.Options{Allow: l.conf.limits.bundleHosts.Allow})
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // its message repeats the URL, query and all
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("server answered %s", resp.Status)
	}
	limit := l.conf.limits.maxBundle
	if err := safehttp.CheckLength(resp, limit); err != nil {
		return fmt.Errorf("%w (max_bundle_size = %q in the plugin config)", err, l.conf.MaxBundleSize)
	}
	f, err := os.OpenFile(dst, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, safehttp.LimitReader(resp.Body, limit)); err != nil {
		f.Close()
		if errors.Is(err, safehttp.ErrTooLarge) {
			return fmt.Errorf("%w (max_bundle_size = %q in the plugin config)", err, l.conf.MaxBundleSize)
		}
		return err
	}
	return f.Close()
}

// createEvents creates the job's empty events file as the task starts, so
// that a follower (a shim, solstice run) opens its stream once and is
// woken by the first event, instead of finding no file and retrying on
// its own clock while the VM boots. Failing here is not fatal: the runner
// creates the file when it starts following.
func (l *launch) createEvents() {
	if l.tc.Plan == "" {
		return
	}
	p := l.eventsPath()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		l.log.Warn("could not create the events file early", "error", err)
		return
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		l.log.Warn("could not create the events file early", "error", err)
		return
	}
	f.Close()
}

// eventsPath is alloc/solstice/<task>/events.jsonl, where the shims follow
// the job (contract.EventsPath names the same file from the API's side).
func (l *launch) eventsPath() string {
	return filepath.Join(l.cfg.AllocDir, contract.EventsPath(l.cfg.Name))
}

// agentBinary finds the solstice-guest build for a guest OS: in
// guest_agent_dir when the operator set one, else the build embedded in
// this binary (unpacked under cache_dir), else next to the plugin binary
// (a plain `go build` embeds none).
func (d *Driver) agentBinary(guestOS string) (string, error) {
	conf := d.cfg()
	dir := conf.GuestAgentDir
	if dir == "" && guestagents.Embedded() {
		p, err := guestagents.Path(filepath.Join(conf.CacheDir, "guest-agents"), guestOS)
		if err != nil {
			return "", fmt.Errorf("guest agent for %s: %w", guestOS, err)
		}
		return p, nil
	}
	if dir == "" {
		exe, err := osExecutable()
		if err != nil {
			return "", fmt.Errorf("locate the guest agent: %w", err)
		}
		dir = filepath.Dir(exe)
	}
	p := filepath.Join(dir, guestagents.Name(guestOS))
	if _, err := osStat(p); err != nil {
		return "", fmt.Errorf("guest agent for %s: %w (this solstice-vm embeds no agents: build it with make build, or set guest_agent_dir in the plugin config)", guestOS, err)
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
	log := d.log.With("task", cfg.Name, "alloc", cfg.AllocID)
	start := h.State().StartedAt
	if start.IsZero() {
		start = time.Now() // a state from before StartedAt was kept
	}
	return vms.Job(vm.JobSpec{
		Log:       log,
		SSH:       h.SSH,
		Events:    h.State().Events,
		Out:       out,
		MaxEvents: d.cfg().limits.maxEvents,
		Deadline:  jobrun.Deadline(start, readPlan(log, cfg)),
	}), nil
}

// readPlan reads the task's plan for its timeouts; nil (the defaults)
// when it cannot. The deadline counts from the task's start, so an
// adopted task keeps the deadline it had.
func readPlan(log hclog.Logger, cfg *drivers.TaskConfig) *contract.Plan {
	var tc TaskConfig
	if err := cfg.DecodeDriverConfig(&tc); err != nil {
		log.Warn("cannot read the task config for the job's deadline; using the default timeouts", "error", err)
		return nil
	}
	p, err := confine(cfg.TaskDir().Dir, "plan", tc.Plan)
	if err != nil || p == "" {
		return nil
	}
	f, err := os.Open(p)
	if err != nil {
		log.Warn("cannot read the plan for the job's deadline; using the default timeouts", "error", err)
		return nil
	}
	defer f.Close()
	plan, err := contract.DecodePlanAuto(f)
	if err != nil {
		log.Warn("cannot read the plan for the job's deadline; using the default timeouts", "error", err)
		return nil
	}
	return plan
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
