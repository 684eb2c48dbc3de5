package localrun

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/workflow"
)

// Options are solstice run's settings.
type Options struct {
	Workflow string            // the workflow file
	Job      string            // run only this job (and nothing else)
	Matrix   map[string]string // run only the combinations with these values
	Secrets  map[string]string
	Vars     map[string]string
	// Debug, when set, asks for a debug SSH session into a failed job's
	// VM with these keys; the run then ends when the session does.
	Debug *contract.DebugSSH
	// Local, when set, runs everything on an embedded local agent;
	// otherwise Nomad is the cluster (nil: api.DefaultConfig, i.e. the
	// environment). A cluster that does not answer fails the run: never a
	// silent fallback to a local agent.
	Local *Local
	Nomad *api.Config
	// BundleListen is where the repository bundle is served from; the
	// Nomad clients must reach it. Defaults to 127.0.0.1:0.
	BundleListen string
	Out          io.Writer
	// Err gets the error that ends a run ("solstice run: …"); nil: Out.
	Err io.Writer
	Log hclog.Logger
}

// Run runs the workflow and returns the process exit code: 0 when every
// job succeeded, 1 when one failed, 2 when cancelled, 3 on an
// infrastructure failure (contract.Exit*).
func Run(ctx context.Context, o Options) int {
	if o.Log == nil {
		o.Log = hclog.NewNullLogger()
	}
	p := newPrinter(o.Out)
	code, err := run(ctx, o, p)
	if err != nil {
		errOut := o.Err
		if errOut == nil {
			errOut = o.Out
		}
		fmt.Fprintf(errOut, "solstice run: %v\n", err)
		if code == 0 {
			code = 3
		}
	}
	return code
}

func run(ctx context.Context, o Options, p *printer) (int, error) {
	w, runs, err := load(o)
	if err != nil {
		return 1, err
	}
	c, stop, err := connect(ctx, o, p)
	if err != nil {
		return 3, err
	}
	defer stop()
	d := &nomad.Client{API: c, Log: o.Log}
	catalog, err := d.Catalog(ctx)
	if err != nil {
		return 3, err
	}
	labels, err := w.ResolveLabels(runs, catalog)
	if err != nil {
		return 1, err
	}
	snap, srv, err := prepareCheckout(ctx, o, p)
	if err != nil {
		return 3, err
	}
	defer srv.Close()
	defer os.Remove(snap.Bundle)
	r := &runner{
		opts: o, wf: w, print: p, snap: snap, bundleURL: srv.URL,
		d:       d,
		results: map[string][]*result{},
	}
	return r.all(ctx, runs, labels)
}

// load parses the workflow and picks the runs the options ask for.
func load(o Options) (*workflow.Workflow, []workflow.Run, error) {
	w, err := workflow.ParseFile(o.Workflow) // .kdl or YAML, by extension
	if err != nil {
		return nil, nil, err
	}
	runs, err := w.Runs()
	if err != nil {
		return nil, nil, err
	}
	runs = filter(runs, o)
	if len(runs) == 0 {
		return nil, nil, errors.New("no job matches --job and --matrix")
	}
	return w, runs, nil
}

func filter(runs []workflow.Run, o Options) []workflow.Run {
	var out []workflow.Run
	for _, r := range runs {
		if o.Job != "" && !strings.EqualFold(r.JobID, o.Job) {
			continue
		}
		if !matrixMatches(r.Matrix, o.Matrix) {
			continue
		}
		if o.Job != "" {
			r.Needs = nil // a single job runs on its own
		}
		out = append(out, r)
	}
	return out
}

func matrixMatches(m workflow.Map, want map[string]string) bool {
	for k, v := range want {
		got, ok := m.Get(k)
		if !ok || fmt.Sprint(got) != v {
			return false
		}
	}
	return true
}

// connect reaches the cluster named by the environment, or starts the
// local agent. stop undoes it.
func connect(ctx context.Context, o Options, p *printer) (*api.Client, func(), error) {
	if o.Local == nil {
		c, err := reach(ctx, o.Nomad)
		return c, func() {}, err
	}
	a, err := startLocal(ctx, *o.Local, p.say)
	if err != nil {
		return nil, nil, err
	}
	stop := func() {
		p.say("stopping the local Nomad agent")
		a.Stop(30 * time.Second)
		a.Unmount()
		os.RemoveAll(a.DataDir())
	}
	c, err := a.Client()
	if err != nil {
		stop()
		return nil, nil, err
	}
	return c, stop, nil
}

// reachTimeout bounds the first request to the cluster: a user at a
// terminal learns within seconds that the address is wrong.
const reachTimeout = 10 * time.Second

// reach connects to the cluster conf names and asks it for its leader, so
// an address that does not answer (or fails TLS verification) is reported
// at once, with what to do.
func reach(ctx context.Context, conf *api.Config) (*api.Client, error) {
	if conf == nil {
		conf = api.DefaultConfig()
	}
	c, err := api.NewClient(conf)
	if err != nil {
		return nil, fmt.Errorf("nomad client for %s: %w", conf.Address, err)
	}
	ctx, cancel := context.WithTimeout(ctx, reachTimeout)
	defer cancel()
	var leader string
	_, err = c.Raw().Query("/v1/status/leader", &leader, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("the Nomad cluster at %s does not answer: %w (check -address or NOMAD_ADDR, or pass -local to run on a local Nomad agent)", conf.Address, err)
	}
	return c, nil
}

func prepareCheckout(ctx context.Context, o Options, p *printer) (*Snapshot, *BundleServer, error) {
	f, err := os.CreateTemp("", "solstice-run-*.bundle")
	if err != nil {
		return nil, nil, err
	}
	f.Close()
	snap, err := TakeSnapshot(ctx, filepath.Dir(o.Workflow), f.Name())
	if err != nil {
		os.Remove(f.Name())
		return nil, nil, err
	}
	dirty := ""
	if snap.Dirty {
		dirty = " (with uncommitted changes)"
	}
	p.say("checking out %s at %.12s%s", filepath.Base(snap.Repo), snap.Commit, dirty)
	listen := o.BundleListen
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	srv, err := ServeBundle(listen, snap.Bundle)
	if err != nil {
		os.Remove(snap.Bundle)
		return nil, nil, err
	}
	return snap, srv, nil
}

// runner runs the selected jobs wave by wave.
type runner struct {
	opts      Options
	wf        *workflow.Workflow
	print     *printer
	snap      *Snapshot
	bundleURL string
	d         nomad.Jobs

	mu      sync.Mutex
	results map[string][]*result // by job id: every run of the job
}

func (r *runner) record(res *result) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.results[res.run.JobID] = append(r.results[res.run.JobID], res)
}

func (r *runner) all(ctx context.Context, runs []workflow.Run, labels []string) (int, error) {
	byRun := map[string]string{}
	for i, run := range runs {
		byRun[run.JobID+"\x00"+run.Name] = labels[i]
	}
	waves, err := workflow.Order(runs)
	if err != nil {
		return 1, err
	}
	var all []*result
	for _, wave := range waves {
		// Runs are dispatched one after another in the workflow's order
		// (GitHub's matrix order), then watched side by side.
		var wg sync.WaitGroup
		for _, run := range wave {
			res := &result{run: run, label: byRun[run.JobID+"\x00"+run.Name]}
			all = append(all, res)
			job, ok := r.start(ctx, res)
			if !ok {
				r.record(res)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer r.d.Finish(context.WithoutCancel(ctx), job)
				r.watch(ctx, res, job)
				r.record(res)
			}()
		}
		wg.Wait()
	}
	r.print.summary(all)
	return overall(all), nil
}
