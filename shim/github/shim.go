package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/shim/debuglock"
	"github.com/solstice-ci/solstice/shim/debugssh"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/retry"
)

// Config configures a Shim.
type Config struct {
	// URL is the GitHub URL the runners registered with; it names the
	// instance in dispatch meta and the scope of the Nomad Variables.
	URL string
	// Runners names the registered runners to run; empty runs every
	// runner registered for URL.
	Runners []string
	// Label is the catalog label jobs run on when a runner's own labels
	// name none (JIT runners carry no labels).
	Label   string
	Store   *Store
	Nomad   nomad.Jobs
	Info    protocol.RunnerInfo
	HTTP    *http.Client
	Log     hclog.Logger
	Metrics *Metrics
	Timing  Timing
	// Debug is the operator's policy on debug SSH sessions; DebugLock
	// keeps them to one per repository (nil: no limit, for tests).
	Debug     debugssh.Policy
	DebugLock debuglock.Vars
}

// Timing are the shim's intervals; zero fields take DefaultTiming's.
type Timing struct {
	Renew         time.Duration // between lock renewals (the runner's 60 s)
	LockGrace     time.Duration // how long past lockedUntil failed renewals are retried
	Flush         time.Duration // between reports of what changed
	RetryMin      time.Duration
	RetryMax      time.Duration
	VersionTooOld time.Duration // between polls while GitHub refuses the runner version
	Probe         time.Duration // between Nomad reads that keep /healthz current
	Watch         nomad.Timing
}

// DefaultTiming is the official runner's cadence where it has one.
var DefaultTiming = Timing{
	Renew: 60 * time.Second, LockGrace: 5 * time.Minute, Flush: 500 * time.Millisecond,
	RetryMin: time.Second, RetryMax: time.Minute, VersionTooOld: 5 * time.Minute, Probe: 10 * time.Second,
	Watch: nomad.Timing{Status: 2 * time.Second, NoEvent: 30 * time.Second, EndWait: 2 * time.Minute, RetryMin: time.Second, RetryMax: time.Minute},
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming
	pick := func(v, def time.Duration) time.Duration {
		if v == 0 {
			return def
		}
		return v
	}
	t.Renew, t.Flush, t.LockGrace = pick(t.Renew, d.Renew), pick(t.Flush, d.Flush), pick(t.LockGrace, d.LockGrace)
	t.RetryMin, t.RetryMax = pick(t.RetryMin, d.RetryMin), pick(t.RetryMax, d.RetryMax)
	t.VersionTooOld, t.Probe = pick(t.VersionTooOld, d.VersionTooOld), pick(t.Probe, d.Probe)
	w, dw := &t.Watch, d.Watch
	w.Status, w.NoEvent, w.EndWait = pick(w.Status, dw.Status), pick(w.NoEvent, dw.NoEvent), pick(w.EndWait, dw.EndWait)
	w.RetryMin, w.RetryMax = pick(w.RetryMin, dw.RetryMin), pick(w.RetryMax, dw.RetryMax)
	return t
}

// Shim runs registered GitHub runners.
type Shim struct {
	cfg      Config
	log      hclog.Logger
	metrics  *Metrics
	nomad    nomad.Jobs
	instance string
	tasks    sync.WaitGroup
}

// New checks the configuration.
func New(cfg Config) (*Shim, error) {
	if cfg.URL == "" || cfg.Store == nil || cfg.Nomad == nil {
		return nil, errors.New("github shim: a GitHub URL, a store and Nomad are needed")
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.HTTP == nil {
		cfg.HTTP = &http.Client{}
	}
	cfg.Timing = cfg.Timing.withDefaults()
	return &Shim{
		cfg: cfg, log: cfg.Log, metrics: cfg.Metrics, instance: strings.TrimRight(cfg.URL, "/"),
		nomad: nomad.Observed{Jobs: cfg.Nomad, Report: cfg.Metrics.nomadCall},
	}, nil
}

// Run runs the runners until ctx ends, then waits for their jobs'
// goroutines; jobs still running stay in Nomad for the next shim.
func (sh *Shim) Run(ctx context.Context) error {
	runners, err := sh.loadRunners(ctx)
	if err != nil {
		return err
	}
	if err := sh.resumeAll(ctx, runners); err != nil {
		return err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); sh.probeNomad(ctx) }()
	wg.Add(1)
	go func() { defer wg.Done(); nomad.SweepEvery(ctx, sh.nomad, nomad.SweepInterval, sh.log) }()
	for _, rn := range runners {
		wg.Add(1)
		go func() { defer wg.Done(); rn.run(ctx) }()
	}
	wg.Wait()
	sh.tasks.Wait()
	return ctx.Err()
}

// probeNomad reads the catalog every Probe until ctx ends, so /healthz
// notices an unreachable Nomad while no job is running.
func (sh *Shim) probeNomad(ctx context.Context) {
	for retry.Sleep(ctx, sh.cfg.Timing.Probe) {
		pctx, cancel := context.WithTimeout(ctx, sh.cfg.Timing.Probe)
		if _, err := sh.nomad.Catalog(pctx); err != nil && ctx.Err() == nil {
			sh.log.Warn("Nomad does not answer", "error", err)
		}
		cancel()
	}
}

// loadRunners reads the runners' credentials and picks each one's label.
func (sh *Shim) loadRunners(ctx context.Context) (map[string]*runner, error) {
	names := sh.cfg.Runners
	if len(names) == 0 {
		var err error
		if names, err = sh.cfg.Store.Runners(ctx); err != nil {
			return nil, err
		}
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("no runners are registered for %s: run `solstice github register` first", sh.cfg.URL)
	}
	catalog, err := sh.nomad.Catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the label catalog from Nomad: %w", err)
	}
	out := map[string]*runner{}
	for _, name := range names {
		rn, err := sh.newRunner(ctx, name, catalog)
		if err != nil {
			return nil, err
		}
		out[name] = rn
	}
	return out, nil
}

func (sh *Shim) newRunner(ctx context.Context, name string, catalog map[string]string) (*runner, error) {
	creds, err := sh.cfg.Store.LoadRunner(ctx, name)
	if err != nil {
		return nil, err
	}
	if creds == nil {
		return nil, fmt.Errorf("runner %q is not registered for %s: run `solstice github register` first", name, sh.cfg.URL)
	}
	label, err := runnerLabel(creds.Labels, sh.cfg.Label, catalog)
	if err != nil {
		return nil, fmt.Errorf("runner %q: %w", name, err)
	}
	ts := protocol.NewTokenSource(creds, sh.cfg.HTTP)
	return &runner{
		sh: sh, name: name, label: label, log: sh.log.With("runner", name), tokens: ts,
		ephemeral: creds.Ephemeral, jobs: map[string]*task{},
		client: protocol.NewClient(creds, ts, sh.cfg.Info, sh.cfg.HTTP),
	}, nil
}

// runnerLabel picks the catalog label a runner's jobs run on. GitHub does
// not say which of a runner's labels a job asked for, so a runner may
// carry exactly one label that names an image.
func runnerLabel(labels []string, fallback string, catalog map[string]string) (string, error) {
	found := map[string]bool{}
	for _, l := range labels {
		if c, ok := catalog[l]; ok {
			found[c] = true
		}
	}
	names := slices.Sorted(maps.Keys(found))
	switch {
	case len(names) == 1:
		return names[0], nil
	case len(names) > 1:
		return "", fmt.Errorf("its labels name %d images (%s); register one runner per image", len(names), strings.Join(names, ", "))
	case fallback != "":
		if c, ok := catalog[fallback]; ok {
			return c, nil
		}
		return "", fmt.Errorf("label %q is not in Nomad's catalog (run `solstice jobs sync`)", fallback)
	}
	return "", fmt.Errorf("none of its labels (%s) names an image in Nomad's catalog; register it with one, or pass --label", strings.Join(labels, ", "))
}

// resumeAll picks up every job acquired before the shim restarted: it is
// watched if Nomad has its dispatch, dispatched otherwise. Dispatches
// without a record (a shim died between forgetting a job and removing
// its secrets) are cleaned up.
func (sh *Shim) resumeAll(ctx context.Context, runners map[string]*runner) error {
	// Dispatches first, then records: a job is recorded before it is
	// dispatched, so every dispatch listed has its record read below,
	// even one another shim just made.
	jobs, err := sh.nomad.InFlight(ctx, ForgeName, sh.instance)
	if err != nil {
		return fmt.Errorf("list the jobs in flight: %w", err)
	}
	recs, err := sh.cfg.Store.Jobs(ctx)
	if err != nil {
		return fmt.Errorf("read the jobs in flight: %w", err)
	}
	byTask := map[string]*nomad.Job{}
	for _, j := range jobs {
		byTask[j.Meta.TaskID] = j
	}
	for _, rec := range recs {
		job := byTask[rec.JobID]
		delete(byTask, rec.JobID)
		sh.resumeRecord(ctx, runners, rec, job)
	}
	for _, job := range byTask {
		sh.cleanUp(ctx, job)
	}
	return nil
}

func (sh *Shim) resumeRecord(ctx context.Context, runners map[string]*runner, rec *Record, job *nomad.Job) {
	log := sh.log.With("github_job", rec.JobID, "runner", rec.Runner)
	rn := runners[rec.Runner]
	switch {
	case rn == nil && sh.runnerExists(ctx, rec.Runner):
		return // a runner another shim runs
	case rn == nil:
		log.Warn("the runner that acquired the job is no longer registered; stopping the job")
		if job != nil {
			sh.cleanUp(ctx, job)
		}
	case job == nil && rec.NomadJob != "":
		log.Info("the job's dispatch is over and cleaned up; forgetting its record", "job", rec.NomadJob)
	default:
		if err := sh.resume(ctx, rn, rec, job); err != nil {
			log.Error("cannot resume the job; forgetting it", "error", err)
		} else {
			return
		}
	}
	if err := sh.cfg.Store.DeleteJob(ctx, rec.JobID); err != nil {
		log.Warn("cannot delete the job's record", "error", err)
	}
}

func (sh *Shim) runnerExists(ctx context.Context, name string) bool {
	c, err := sh.cfg.Store.LoadRunner(ctx, name)
	return err != nil || c != nil // when in doubt, leave it alone
}

// cleanUp stops a dispatch no record owns and removes its secrets.
func (sh *Shim) cleanUp(ctx context.Context, job *nomad.Job) {
	tr := &nomad.Tracker{Nomad: sh.nomad, Job: job, Timing: sh.cfg.Timing.Watch, Log: sh.log.With("job", job.ID)}
	if err := tr.Cancel(ctx); err != nil {
		return
	}
	if err := tr.Finish(ctx); err != nil {
		tr.Log.Warn("cannot remove the secrets of a job no record owns", "error", err)
		return
	}
	tr.Log.Info("stopped a dispatch no job record owns and removed its secrets")
}

func (sh *Shim) resume(ctx context.Context, rn *runner, rec *Record, job *nomad.Job) error {
	var msg protocol.JobMessage
	if err := json.Unmarshal(rec.Message, &msg); err != nil {
		return fmt.Errorf("decode the recorded job message: %w", err)
	}
	msg.Raw = rec.Message
	t, err := sh.newTask(rn, rec, &msg)
	if err != nil {
		return err
	}
	t.log.Info("resuming a job", "dispatched", job != nil, "logs_stored", len(rec.Uploaded))
	rn.start(ctx, t, job)
	return nil
}
