package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"runtime"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/shim/debugssh"
	"github.com/solstice-ci/solstice/shim/forgejo"
	"github.com/solstice-ci/solstice/shim/github"
	"github.com/solstice-ci/solstice/shim/github/protocol"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/nomadvar"
)

const githubUsage = `usage:
  solstice github register --url https://github.com/OWNER[/REPO] --token REG_TOKEN
                           --name NAME --labels a,b [--runners N]
  solstice github register --url URL --jit-config @FILE|-|BLOB [--labels a,b]
  solstice github run --url URL [--name NAME,...] [--label L] [--listen ADDR]
                      [--runner-version V]
  solstice github remove --url URL --token REG_TOKEN [--name NAME,...]

The runner shim for GitHub Actions on github.com and GitHub Enterprise
Server (https://HOST/OWNER[/REPO]; the API is found under /api/v3). Each
registered runner runs one job at a time, so --runners N runs N at once;
more wait in Nomad's queue. Nomad is reached through Nomad's options
(-address …) or environment (NOMAD_ADDR …); runner ids and private keys live in Nomad Variables under
solstice/runners/github/, acquired jobs under solstice/jobs/github/.

GitHub sends jobs only to current runner releases: --runner-version
(default ` + protocol.DefaultRunnerVersion + `) must name a recent actions/runner
release, or the broker answers RunnerVersionTooOld.
Run 'solstice github <subcommand> -h' for the options.
`

func cmdGitHub(ctx context.Context, args []string) int {
	return group("github", githubUsage, map[string]func([]string) int{
		"register": func(a []string) int { return githubRegister(ctx, a) },
		"run":      func(a []string) int { return githubRun(ctx, a) },
		"remove":   func(a []string) int { return githubRemove(ctx, a) },
	}, args)
}

// githubFlags are the flags the subcommands share.
type githubFlags struct {
	url, name, labels, version string
	nomad                      nomadFlags
	// debugSSH and debugForks are `github run`'s debug session policy.
	debugSSH, debugForks bool
}

func (f *githubFlags) add(fs *flag.FlagSet, nameHelp string) {
	fs.StringVar(&f.url, "url", "", "the repository, organisation or enterprise URL, e.g. https://github.com/OWNER/REPO")
	fs.StringVar(&f.name, "name", defaultRunnerName, nameHelp)
	f.nomad.addWithToken(fs, "nomad-token")
}

// addLabels and addVersion are for the subcommands that use them only:
// a flag a command accepts must do something there.
func (f *githubFlags) addLabels(fs *flag.FlagSet) {
	fs.StringVar(&f.labels, "labels", "", "comma-separated runner labels; exactly one must name an image of the Nomad catalog")
}

func (f *githubFlags) addVersion(fs *flag.FlagSet) {
	fs.StringVar(&f.version, "runner-version", protocol.DefaultRunnerVersion, "the actions/runner release the shim reports")
}

func (f *githubFlags) store(c *api.Client) (*github.Store, error) {
	if f.url == "" {
		return nil, errors.New("--url is required")
	}
	scope, err := github.ScopeOf(f.url)
	if err != nil {
		return nil, err
	}
	return &github.Store{Vars: nomadvar.Store{API: c}, Scope: scope}, nil
}

func (f *githubFlags) options(token string) protocol.RegisterOptions {
	return protocol.RegisterOptions{
		URL: f.url, Token: token, Name: f.name, Labels: forgejo.ParseLabels(f.labels),
		RunnerVersion: f.version, HTTPClient: &http.Client{Timeout: time.Minute},
	}
}

func (f *githubFlags) names() []string {
	if f.name == "" {
		return nil
	}
	return strings.Split(f.name, ",")
}

func githubRegister(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("github register", flag.ContinueOnError)
	var f githubFlags
	f.add(fs, "the runner's name (with --runners N: NAME-1 … NAME-N)")
	f.addLabels(fs)
	f.addVersion(fs)
	token := fs.String("token", "", "a runner registration token from GitHub (or $SOLSTICE_GITHUB_REGISTRATION_TOKEN)")
	runners := fs.Int("runners", 1, "how many runners to register (jobs run at once)")
	jit := fs.String("jit-config", "", "register from an encoded JIT config instead of a token: @FILE or - (stdin) keeps its private key off the command line")
	if code, ok := parseFlags(fs, githubUsage, args); !ok {
		return code
	}
	orEnv(token, "SOLSTICE_GITHUB_REGISTRATION_TOKEN") // not a flag default: usage text would print it
	err := f.withStore(ctx, func(ctx context.Context, store *github.Store) error {
		if *jit != "" {
			blob, err := readArg(*jit)
			if err != nil {
				return fmt.Errorf("--jit-config: %w", err)
			}
			creds, err := github.RegisterJIT(ctx, store, blob, forgejo.ParseLabels(f.labels))
			if err != nil {
				return err
			}
			fmt.Printf("stored JIT runner %q (id %d) for %s\n", creds.RunnerName, creds.RunnerID, f.url)
			return nil
		}
		if *token == "" {
			return errors.New("--token (or --jit-config) is required")
		}
		all, err := github.Register(ctx, store, github.Registration{RegisterOptions: f.options(*token), Runners: *runners})
		for _, c := range all {
			fmt.Printf("registered runner %q (id %d) with %s, labels %s\n", c.RunnerName, c.RunnerID, f.url, strings.Join(c.Labels, ","))
		}
		return err
	})
	return exitCode("solstice github register", err)
}

func githubRemove(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("github remove", flag.ContinueOnError)
	var f githubFlags
	f.add(fs, "comma-separated runners to remove (empty: every runner of --url)")
	token := fs.String("token", "", "a runner removal (or registration) token from GitHub (or $SOLSTICE_GITHUB_REGISTRATION_TOKEN)")
	if code, ok := parseFlags(fs, githubUsage, args); !ok {
		return code
	}
	orEnv(token, "SOLSTICE_GITHUB_REGISTRATION_TOKEN") // not a flag default: usage text would print it
	err := f.withStore(ctx, func(ctx context.Context, store *github.Store) error {
		removed, err := github.Remove(ctx, store, f.options(*token), f.names())
		for _, n := range removed {
			fmt.Printf("removed runner %q from %s\n", n, f.url)
		}
		return err
	})
	return exitCode("solstice github remove", err)
}

// withStore runs fn with the runners' store and a time limit for talking
// to GitHub and Nomad.
func (f *githubFlags) withStore(ctx context.Context, fn func(context.Context, *github.Store) error) error {
	store, err := githubStore(f)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	return fn(ctx, store)
}

// exitCode prints a command's error and turns it into its exit code.
func exitCode(cmd string, err error) int {
	if err != nil {
		fmt.Fprintln(os.Stderr, cmd+":", err)
		return exitFail
	}
	return exitOK
}

func githubStore(f *githubFlags) (*github.Store, error) {
	c, err := f.nomad.client()
	if err != nil {
		return nil, err
	}
	return f.store(c)
}

func githubRun(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("github run", flag.ContinueOnError)
	var f githubFlags
	f.add(fs, "comma-separated runners to run (empty: every runner registered for --url)")
	f.addVersion(fs)
	fs.Lookup("name").DefValue, f.name = "", ""
	label := fs.String("label", "", "the catalog label jobs run on when a runner's labels name none (JIT runners)")
	listen := fs.String("listen", "127.0.0.1:9465", "address for /metrics and /healthz (empty: none)")
	fs.BoolVar(&f.debugSSH, "debug-ssh", true, "allow debug SSH sessions into failed jobs' VMs for debug re-runs and repositories that set SOLSTICE_DEBUG_SSH=true")
	fs.BoolVar(&f.debugForks, "debug-ssh-forks", false, "allow them for pull requests from forks and other repositories too")
	if code, ok := parseFlags(fs, githubUsage, args); !ok {
		return code
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "solstice-github", Level: hclog.LevelFromString(envOr("SOLSTICE_LOG_LEVEL", "info"))})
	if err := runGitHub(ctx, log, f, *label, *listen); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("runner stopped", "error", err)
		return 1
	}
	return 0
}

func runGitHub(ctx context.Context, log hclog.Logger, f githubFlags, label, listen string) error {
	c, err := f.nomad.client()
	if err != nil {
		return err
	}
	store, err := f.store(c)
	if err != nil {
		return err
	}
	metrics := github.NewMetrics()
	sh, err := github.New(github.Config{
		URL: f.url, Runners: f.names(), Label: label, Store: store,
		Nomad: &nomad.Client{API: c, Log: log.Named("nomad")},
		Info:  protocol.RunnerInfo{Version: f.version, OS: "Linux", Arch: runtimeArch()},
		Log:   log, Metrics: metrics,
		Debug:     debugssh.Policy{Disabled: !f.debugSSH, AllowForks: f.debugForks},
		DebugLock: c.Variables(),
	})
	if err != nil {
		return err
	}
	return serveWhileRunning(ctx, listen, metrics.Handler(), log, sh.Run)
}

// readArg reads @FILE, - (stdin) or the value itself.
func readArg(v string) (string, error) {
	switch {
	case v == "-":
		b, err := io.ReadAll(os.Stdin)
		return string(b), err
	case strings.HasPrefix(v, "@"):
		b, err := os.ReadFile(v[1:])
		return string(b), err
	}
	return v, nil
}

// runtimeArch is the architecture as the runner names it.
func runtimeArch() string {
	switch runtime.GOARCH {
	case "amd64":
		return "X64"
	case "arm64":
		return "ARM64"
	}
	return strings.ToUpper(runtime.GOARCH)
}
