package forgejo

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/solstice-ci/solstice/shim/debuglock"
	"github.com/solstice-ci/solstice/shim/debugssh"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/retry"
)

// Config configures a Runner.
type Config struct {
	URL  string // the forge's root URL
	Name string // the runner's name in the forge
	// Labels the runner declares; empty means every label and alias of
	// the catalog, re-declared when the catalog changes.
	Labels []string
	// Capacity is the most tasks in flight (dispatched and not yet
	// reported finished); more are not fetched.
	Capacity int
	// RegistrationToken registers the runner on its first start, or again
	// when the forge no longer knows it. Optional once registered.
	RegistrationToken string
	Version           string

	// Cache, when set, gives every job a token for the shim's cache
	// service (actions/cache), which Forgejo and Gitea do not have.
	Cache *CacheAccess

	Store   Store
	Nomad   nomad.Jobs
	Log     hclog.Logger
	Metrics *Metrics // optional
	Timing  Timing   // zero fields take DefaultTiming's
	// Debug is the operator's policy on debug SSH sessions; DebugLock
	// keeps them to one per repository (nil: no limit, for tests); HTTP
	// fetches users' keys from the forge (nil: a default client).
	Debug     debugssh.Policy
	DebugLock debuglock.Vars
	HTTP      *http.Client
}

// Timing holds the runner's intervals; tests shorten them.
type Timing struct {
	Fetch      time.Duration // between FetchTask calls while idle
	Heartbeat  time.Duration // UpdateTask at least this often
	LogFlush   time.Duration // UpdateLog at most this late
	Status     time.Duration // between Nomad status reads of a job
	NoEvent    time.Duration // how long a finished job may lack its last event
	EndWait    time.Duration // how long to wait for the VM to stop after the last event
	RetryMin   time.Duration // first retry delay after a failed call
	RetryMax   time.Duration // longest retry delay
	CatalogTTL time.Duration // how long a label catalog is reused
	Probe      time.Duration // between Nomad reads that keep /healthz current
}

// DefaultTiming is the production timing.
func DefaultTiming() Timing {
	return Timing{
		Fetch: 2 * time.Second, Heartbeat: 3 * time.Second, LogFlush: time.Second,
		Status: 2 * time.Second, NoEvent: 15 * time.Second, EndWait: 3 * time.Minute,
		RetryMin: time.Second, RetryMax: time.Minute, CatalogTTL: 30 * time.Second,
		Probe: 10 * time.Second,
	}
}

func (t Timing) withDefaults() Timing {
	d := DefaultTiming()
	for _, f := range []struct{ v, def *time.Duration }{
		{&t.Fetch, &d.Fetch}, {&t.Heartbeat, &d.Heartbeat}, {&t.LogFlush, &d.LogFlush},
		{&t.Status, &d.Status}, {&t.NoEvent, &d.NoEvent}, {&t.EndWait, &d.EndWait},
		{&t.RetryMin, &d.RetryMin}, {&t.RetryMax, &d.RetryMax}, {&t.CatalogTTL, &d.CatalogTTL},
		{&t.Probe, &d.Probe},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	return t
}

// Instance is the dispatch meta "instance" of a runner's jobs: the forge
// and the runner's name, so that two runners on one forge never pick up
// each other's jobs after a restart.
func Instance(forgeURL, name string) string {
	return strings.TrimRight(forgeURL, "/") + "#" + name
}

// Runner is one registered runner: it fetches tasks, dispatches them and
// reports them until its context ends or the forge rejects it.
type Runner struct {
	cfg      Config
	log      hclog.Logger
	metrics  *Metrics
	nomad    nomad.Jobs
	forge    *Client
	instance string

	slots *slots
	tasks sync.WaitGroup

	mu          sync.Mutex
	catalog     map[string]string
	catalogAt   time.Time
	declared    []string
	fatalErr    error
	cancelRunFn context.CancelFunc
}

// New checks the configuration and returns a runner; Run starts it.
func New(cfg Config) (*Runner, error) {
	u, err := url.Parse(cfg.URL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return nil, fmt.Errorf("forge URL %q: want http(s)://host[:port]/", cfg.URL)
	case cfg.Name == "":
		return nil, errors.New("a runner name is needed")
	case cfg.Store == nil || cfg.Nomad == nil:
		return nil, errors.New("a credentials store and Nomad are needed")
	}
	if cfg.Capacity <= 0 {
		cfg.Capacity = 1
	}
	if cfg.Log == nil {
		cfg.Log = hclog.NewNullLogger()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	cfg.Timing = cfg.Timing.withDefaults()
	return &Runner{
		cfg: cfg, log: cfg.Log, metrics: cfg.Metrics, nomad: nomad.Observed{Jobs: cfg.Nomad, Report: cfg.Metrics.nomadCall},
		instance: Instance(cfg.URL, cfg.Name), slots: newSlots(cfg.Capacity),
	}, nil
}

// Metrics returns the runner's metrics.
func (rt *Runner) Metrics() *Metrics { return rt.metrics }

// Run connects to the forge (registering the runner if needed), resumes
// the tasks Nomad still runs for it, and fetches tasks until ctx ends
// (then it returns nil, leaving running jobs to a restarted shim) or the
// forge rejects the runner's credentials.
func (rt *Runner) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	rt.mu.Lock()
	rt.cancelRunFn = cancel
	rt.mu.Unlock()
	defer rt.tasks.Wait()
	defer cancel()
	rt.tasks.Add(1)
	go func() {
		defer rt.tasks.Done()
		rt.probeNomad(ctx)
	}()
	rt.tasks.Add(1)
	go func() {
		defer rt.tasks.Done()
		nomad.SweepEvery(ctx, rt.nomad, nomad.SweepInterval, rt.log)
	}()
	if err := rt.connect(ctx); err != nil {
		return rt.fatal(err)
	}
	rt.log.Info("runner ready", "forge", rt.cfg.URL, "name", rt.cfg.Name, "labels", strings.Join(rt.declared, ","), "capacity", rt.cfg.Capacity)
	if err := rt.resumeAll(ctx); err != nil {
		return rt.fatal(err)
	}
	return rt.fatal(rt.poll(ctx))
}

// fail stops the runner for an error no retry can cure.
func (rt *Runner) fail(err error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.fatalErr == nil {
		rt.fatalErr = err
		rt.log.Error("stopping the runner", "error", err)
	}
	if rt.cancelRunFn != nil {
		rt.cancelRunFn()
	}
}

// fatal returns the error that stopped the runner, if any, else err
// unless it only says the context ended.
func (rt *Runner) fatal(err error) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.fatalErr != nil {
		return rt.fatalErr
	}
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// connect reads the catalog, then registers (if needed) and declares.
func (rt *Runner) connect(ctx context.Context) error {
	backoff := retry.NewBackoff(rt.cfg.Timing.RetryMin, rt.cfg.Timing.RetryMax)
	for {
		err := rt.tryConnect(ctx)
		if err == nil || errors.Is(err, ErrUnauthorized) || isConfigError(err) {
			return err
		}
		d := backoff.Next()
		rt.log.Warn("cannot connect the runner yet; retrying", "in", d, "error", err)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// errConfig marks connection errors that need an operator.
var errConfig = errors.New("runner setup")

func isConfigError(err error) bool { return errors.Is(err, errConfig) }

func (rt *Runner) tryConnect(ctx context.Context) error {
	catalog, err := rt.currentCatalog(ctx)
	if err != nil {
		return err
	}
	labels := rt.labels(catalog)
	if len(labels) == 0 {
		return fmt.Errorf("%w: no labels to declare: the Nomad catalog is empty (run `solstice jobs sync`) and none were given", errConfig)
	}
	reg := Registration{
		URL: rt.cfg.URL, Token: rt.cfg.RegistrationToken, Name: rt.cfg.Name, Labels: labels,
		Version: rt.cfg.Version, Observe: rt.metrics.forgeCall,
	}
	c, creds, err := connectRunner(ctx, rt.cfg.Store, reg)
	if err != nil {
		return err
	}
	rt.forge, rt.declared = c, labels
	rt.log.Info("runner connected", "uuid", creds.UUID, "id", creds.ID)
	return nil
}

func (rt *Runner) labels(catalog map[string]string) []string {
	if len(rt.cfg.Labels) > 0 {
		return rt.cfg.Labels
	}
	return CatalogLabels(catalog)
}

// currentCatalog returns the label catalog, read again from Nomad when
// older than CatalogTTL.
func (rt *Runner) currentCatalog(ctx context.Context) (map[string]string, error) {
	rt.mu.Lock()
	cat, at := rt.catalog, rt.catalogAt
	rt.mu.Unlock()
	if cat != nil && time.Since(at) < rt.cfg.Timing.CatalogTTL {
		return cat, nil
	}
	return rt.readCatalog(ctx)
}

// probeNomad reads the catalog every Probe until ctx ends. The poller alone
// would leave /healthz stale while idle: it reads Nomad only when its cached
// catalog expires (every CatalogTTL at best), and not at all while it waits
// out a forge outage's backoff or retries connecting.
func (rt *Runner) probeNomad(ctx context.Context) {
	for retry.Sleep(ctx, rt.cfg.Timing.Probe) {
		if _, err := rt.readCatalog(ctx); err != nil && ctx.Err() == nil {
			rt.log.Debug("Nomad probe failed", "error", err)
		}
	}
}

// readCatalog reads the label catalog from Nomad and caches it; the read's
// outcome reaches the metrics through the Observed Nomad.
func (rt *Runner) readCatalog(ctx context.Context) (map[string]string, error) {
	cat, err := rt.nomad.Catalog(ctx)
	if err != nil {
		return nil, fmt.Errorf("read the label catalog from Nomad: %w", err)
	}
	rt.mu.Lock()
	rt.catalog, rt.catalogAt = cat, time.Now()
	rt.mu.Unlock()
	return cat, nil
}

// redeclare declares the labels again when the catalog they come from
// changed.
func (rt *Runner) redeclare(ctx context.Context, catalog map[string]string) error {
	labels := rt.labels(catalog)
	if slices.Equal(labels, rt.declared) || len(labels) == 0 {
		return nil
	}
	if err := rt.forge.Declare(ctx, rt.cfg.Version, labels); err != nil {
		return fmt.Errorf("declare the new labels: %w", err)
	}
	rt.log.Info("labels declared again", "labels", strings.Join(labels, ","))
	rt.declared = labels
	return nil
}
