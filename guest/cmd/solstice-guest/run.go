package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/solstice-ci/solstice/guest/events"
	"github.com/solstice-ci/solstice/guest/mask"
	"github.com/solstice-ci/solstice/guest/runner"
	"github.com/solstice-ci/solstice/internal/contract"
)

// detachedChild is the internal command a detaching `run` re-executes
// itself with.
const detachedChild = "__run-detached"

// maxSecrets bounds what is read from stdin.
const maxSecrets = 16 << 20

type runFlags struct {
	root   string
	detach bool
	follow bool
	plan   string
}

func parseRunFlags(name string, args []string, stderr io.Writer) (runFlags, error) {
	var f runFlags
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&f.root, "root", contract.GuestRoot, "directory of the job")
	fs.BoolVar(&f.detach, "detach", false, "run the job in its own session and return once it started")
	fs.BoolVar(&f.follow, "follow", false, "with --detach: once the job started, print its events as follow does")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return f, err
	}
	if f.follow && !f.detach {
		return f, errors.New("--follow goes with --detach")
	}
	if len(pos) != 1 {
		return f, errors.New("run needs exactly one PLAN_FILE")
	}
	f.plan = pos[0]
	return f, nil
}

// parseInterleaved parses flags wherever they are among the positional
// arguments (the flag package stops at the first positional one).
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func cmdRun(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f, err := parseRunFlags("run", args, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "solstice-guest: %v\n%s\n", err, usage)
		return exitUsage
	}
	secrets, raw, err := readSecrets(stdin)
	if err != nil {
		fmt.Fprintf(stderr, "solstice-guest: %v\n", err)
		return runner.ExitInfrastructure
	}
	if f.detach {
		if code := detach(f, raw, stderr); code != runner.ExitSuccess || !f.follow {
			return code
		}
		// The session that started the job becomes its event stream:
		// the driver needs no second session, and the guest no second
		// agent start, before the first step shows.
		return followEvents(f.root, 0, stdout, stderr)
	}
	return runJob(f, secrets, stdout, stderr, nil)
}

// cmdDetachedChild is the job of a detached run: its secrets arrive on
// stdin from the parent, and it reports on fd 3 once it has started.
func cmdDetachedChild(args []string, stdin io.Reader, stderr io.Writer) int {
	ready := os.NewFile(3, "ready")
	report := func(err error) { reportReady(ready, err) }
	f, err := parseRunFlags("run", args, stderr)
	if err != nil {
		report(err)
		return exitUsage
	}
	warmUp()
	in := bufio.NewReader(stdin)
	if word, err := in.ReadString('\n'); word != startWord {
		// Started ahead of a job that never came (see serve): no job.
		fmt.Fprintf(stderr, "solstice-guest: the detached run was not started (%v)\n", err)
		ready.Close()
		return 0
	}
	secrets, _, err := readSecrets(in)
	if err != nil {
		report(err)
		return runner.ExitInfrastructure
	}
	return runJob(f, secrets, nil, stderr, report)
}

// warmUp encodes and decodes a small plan as a job's is decoded: the
// JSON and gzip decoders build their tables on first use, which costs an
// emulated guest tens of milliseconds. A detached child does it while it
// waits for its secrets, so a warm template's waiting job process carries
// the tables into every clone; a cold one spends the time just earlier.
func warmUp() {
	p := &contract.Plan{Version: contract.PlanVersion, Job: contract.Job{ID: "warm-up"},
		Steps: []contract.Step{{Name: "warm-up", Run: "true"}}}
	var buf bytes.Buffer
	if contract.EncodePlanCompressed(&buf, p) == nil {
		contract.DecodePlanAuto(&buf)
	}
}

// readSecrets reads the JSON object of secret values from stdin. An empty
// stdin means no secrets. raw is the object re-encoded, for a detached
// child.
func readSecrets(stdin io.Reader) (map[string]string, []byte, error) {
	if f, ok := stdin.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			return map[string]string{}, []byte("{}"), nil // a terminal: nobody is sending secrets
		}
	}
	dec := json.NewDecoder(io.LimitReader(stdin, maxSecrets))
	var secrets map[string]string
	switch err := dec.Decode(&secrets); {
	case errors.Is(err, io.EOF):
		secrets = map[string]string{}
	case err != nil:
		return nil, nil, fmt.Errorf("read secrets from stdin: want a JSON object of strings: %w", err)
	}
	if secrets == nil {
		secrets = map[string]string{}
	}
	raw, err := json.Marshal(secrets)
	return secrets, raw, err
}

// runJob runs the plan in the foreground and returns the exit code.
// ready, if set, is told once the job has started or could not.
func runJob(f runFlags, secrets map[string]string, stdout, stderr io.Writer, ready func(error)) int {
	if ready == nil {
		ready = func(error) {}
	}
	layout := runner.NewLayout(f.root)
	ew, masker, cleanup, err := startJob(layout, secrets, stdout)
	if err != nil {
		ready(err)
		fmt.Fprintf(stderr, "solstice-guest: %v\n", err)
		return runner.ExitInfrastructure
	}
	defer cleanup()
	ready(nil)
	job, err := newJob(f.plan, layout, ew, secrets, masker)
	if err != nil {
		ew.Emit(contract.Event{Type: contract.TypeInfraError, Message: err.Error()})
		fmt.Fprintf(stderr, "solstice-guest: %v\n", err)
		return runner.ExitInfrastructure
	}
	stop := handleSignals(job)
	defer stop()
	res := job.Run()
	if res.Err != nil {
		fmt.Fprintf(stderr, "solstice-guest: %v\n", res.Err)
	}
	return res.ExitCode()
}

// startJob claims the root for this job: the pid file and a new events
// file, whose masker knows the secrets before anything is written (the
// job shares it). The returned cleanup closes the stream and removes the
// pid file.
func startJob(layout runner.Layout, secrets map[string]string, stdout io.Writer) (*events.Writer, *mask.Masker, func(), error) {
	if err := os.MkdirAll(layout.Root, 0o755); err != nil {
		return nil, nil, nil, fmt.Errorf("create %s: %w", layout.Root, err)
	}
	masker := mask.New()
	for name, v := range secrets {
		if !strings.EqualFold(name, "ACTIONS_STEP_DEBUG") && !strings.EqualFold(name, "ACTIONS_RUNNER_DEBUG") {
			masker.AddSecret(v)
		}
	}
	if err := os.WriteFile(layout.PID, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, nil, nil, fmt.Errorf("write pid file: %w", err)
	}
	ew, err := events.Create(layout.Events, stdout, masker)
	if err != nil {
		os.Remove(layout.PID)
		return nil, nil, nil, err
	}
	return ew, masker, func() {
		ew.Close()
		os.Remove(layout.PID)
	}, nil
}

func newJob(planFile string, layout runner.Layout, ew *events.Writer, secrets map[string]string, m *mask.Masker) (*runner.Job, error) {
	data, err := os.ReadFile(planFile)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	p, err := contract.DecodePlanAuto(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	return runner.New(p, runner.Options{Layout: layout, Events: ew, Masker: m, Secrets: secrets, AgentVersion: version})
}

// handleSignals cancels the job on SIGINT and SIGTERM (what `cancel`
// sends), and keeps a lost terminal or a closed stdout from killing it.
func handleSignals(job *runner.Job) func() {
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			job.Cancel()
		case <-done:
		}
	}()
	return func() {
		signal.Stop(ch)
		close(done)
	}
}
