package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
	"github.com/solstice-ci/solstice/shim/debugssh"
	"github.com/solstice-ci/solstice/shim/localrun"
)

// kvFlag collects repeated KEY=VALUE flags.
type kvFlag struct {
	m        map[string]string
	fromEnv  bool // a bare KEY takes its value from the environment
	flagName string
}

func (f *kvFlag) String() string { return "" }

func (f *kvFlag) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		if !f.fromEnv {
			return fmt.Errorf("want KEY=VALUE, got %q", s)
		}
		val, set := os.LookupEnv(k)
		if !set {
			return fmt.Errorf("--%s %s: the environment has no %s", f.flagName, k, k)
		}
		v = val
	}
	if k == "" {
		return fmt.Errorf("empty key in %q", s)
	}
	f.m[k] = v
	return nil
}

const runUsage = `usage: solstice run [options] WORKFLOW.yml|WORKFLOW.kdl

Runs the workflow's jobs through Nomad, in the order their needs allow,
checking out this repository's current commit (uncommitted changes
included). With -address or NOMAD_ADDR it uses that cluster (with
-token/NOMAD_TOKEN and -namespace/NOMAD_NAMESPACE, as Nomad's CLI does),
and fails (exit 3) when the cluster does not answer; with neither, or with
-local, it starts a local Nomad agent with the solstice-vm driver and the
test guest image. Ctrl-C cancels the jobs. The exit code is the result:
0 success, 1 a job failed, 2 cancelled, 3 infrastructure failure
(2 also for a usage error). A .kdl file is a Solstice KDL workflow: each
job runs once per runs_on label.

With -debug-ssh, a job that fails keeps its VM for an SSH session with
your ~/.ssh/*.pub keys: the job's output shows the ssh command (on a
local agent at 127.0.0.1), when the session expires, and that logging out
or Ctrl-C ends it. The run ends, with the job's real result, when the
session does. On a cluster the session is where its operator's
debug_ssh_host says, for as long as its debug_ssh_max allows.
`

func cmdRun(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	o := localrun.Options{Out: os.Stdout, Err: os.Stderr, Matrix: map[string]string{}, Secrets: map[string]string{}, Vars: map[string]string{}}
	fs.StringVar(&o.Job, "job", "", "run only this job")
	fs.Var(&kvFlag{m: o.Matrix, flagName: "matrix"}, "matrix", "run only matrix combinations with KEY=VALUE (repeatable)")
	fs.Var(&kvFlag{m: o.Secrets, fromEnv: true, flagName: "secret"}, "secret", "a secret KEY=VALUE, or KEY to take it from the environment (repeatable)")
	fs.Var(&kvFlag{m: o.Vars, flagName: "var"}, "var", "a configuration variable KEY=VALUE (repeatable)")
	fs.StringVar(&o.BundleListen, "bundle-listen", "", "address to serve the repository bundle on (default 127.0.0.1:0)")
	debugSSH := fs.Bool("debug-ssh", false, "if a job fails, keep its VM for an SSH session with your ~/.ssh/*.pub keys")
	local := fs.Bool("local", false, "start a local Nomad agent even if -address or NOMAD_ADDR is set")
	var nf nomadFlags
	nf.add(fs)
	l := localDefaults()
	fs.StringVar(&l.Nomad, "nomad", l.Nomad, "nomad binary for the local agent")
	fs.StringVar(&l.Plugin, "plugin", l.Plugin, "the solstice-vm plugin binary (make build embeds the guest agents in it)")
	fs.StringVar(&l.Image, "image", l.Image, "test guest image (qcow2, with IMAGE.sha256 beside it)")
	fs.StringVar(&l.CacheDir, "cache-dir", l.CacheDir, "the local driver's image cache")
	fs.DurationVar(&l.DebugSSHMax, "debug-ssh-max", 30*time.Minute, "how long the local agent keeps a debug session open")
	verbose := fs.Bool("v", false, "log what solstice does")
	if code, ok := parseFlags(fs, runUsage, args); !ok {
		return code
	}
	if fs.NArg() != 1 {
		return usageError(fs, runUsage, "want one workflow file, got %d arguments", fs.NArg())
	}
	if l.DebugSSHMax <= 0 {
		return usageError(fs, runUsage, "-debug-ssh-max %s: want a positive duration", l.DebugSSHMax)
	}
	o.Workflow = fs.Arg(0)
	if *debugSSH {
		req, err := localDebugRequest()
		if err != nil {
			fmt.Fprintf(os.Stderr, "solstice run: -debug-ssh: %v\n", err)
			return exitUsage
		}
		o.Debug = req
	}
	o.Log = hclog.NewNullLogger()
	if *verbose {
		o.Log = hclog.New(&hclog.LoggerOptions{Name: "solstice", Level: hclog.Debug})
	}
	switch {
	case *local || !nf.set():
		o.Local = &l
	case flagSet(fs, "debug-ssh-max"):
		return usageError(fs, runUsage, "-debug-ssh-max sets a local agent's limit; on a cluster, its operator's debug_ssh_max applies")
	default:
		o.Nomad = nf.config()
	}
	return localrun.Run(ctx, o)
}

// flagSet reports whether the command line gave the flag.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// localDebugRequest is -debug-ssh's request: the caller's login and the
// public keys in ~/.ssh/*.pub.
func localDebugRequest() (*contract.DebugSSH, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return nil, fmt.Errorf("find your home directory: %w", err)
	}
	dir := filepath.Join(home, ".ssh")
	keys, err := debugssh.FileKeys(dir)
	if err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no SSH public key in %s/*.pub (ssh-keygen makes one)", dir)
	}
	name := os.Getenv("USER")
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	if name == "" {
		name = "local"
	}
	req, err := debugssh.Request(name, keys)
	if err != nil {
		return nil, fmt.Errorf("the keys in %s/*.pub: %w", dir, err)
	}
	return req, nil
}

// newestImage is the test image of the highest version among paths
// (.cache/images/solstice-test-VERSION/…): "10" is newer than "9".
func newestImage(paths []string) string {
	best, bestV := "", -1
	for _, p := range paths {
		v, err := strconv.Atoi(strings.TrimPrefix(filepath.Base(filepath.Dir(p)), "solstice-test-"))
		if err == nil && v > bestV {
			best, bestV = p, v
		}
	}
	return best
}

// localDefaults finds the local agent's parts next to this binary, as
// `make build` lays them out (bin/ and .cache/ side by side).
func localDefaults() localrun.Local {
	exe, _ := os.Executable()
	bin := filepath.Dir(exe)
	root := filepath.Dir(bin)
	home, _ := os.UserCacheDir()
	nomad := filepath.Join(root, ".cache/tools/nomad-1.6.3/nomad")
	images, _ := filepath.Glob(filepath.Join(root, ".cache/images/solstice-test-*/solstice-test.qcow2"))
	return localrun.Local{
		Nomad: nomad, Plugin: filepath.Join(bin, "solstice-vm"), Image: newestImage(images),
		CacheDir: filepath.Join(home, "solstice", "images"),
	}
}
