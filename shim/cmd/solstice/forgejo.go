package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/shim/debugssh"
	"github.com/solstice-ci/solstice/shim/forge"
	"github.com/solstice-ci/solstice/shim/forgejo"
	"github.com/solstice-ci/solstice/shim/nomad"
)

const forgejoUsage = `usage:
  solstice forgejo register --url URL --token REG_TOKEN --name NAME [--labels a,b]
  solstice forgejo run --url URL [--name NAME] [--capacity N] [--labels a,b]
                       [--listen 127.0.0.1:PORT] [--token REG_TOKEN]
                       [--cache-dir DIR --cache-url URL [--cache-listen ADDR] [--cache-size-mib N]]

The runner shim for Forgejo and Gitea Actions. Nomad is reached through
Nomad's options (-address …) or environment (NOMAD_ADDR …); the runner's credentials are kept in the Nomad
Variable solstice/runners/forgejo/<forge host>/<name>; the name defaults
to "solstice", as in jobspecs/runner-shims.nomad.hcl. Labels default to
every label and alias of the catalog (solstice jobs list).
Run 'solstice forgejo <subcommand> -h' for the options.
`

func cmdForgejo(ctx context.Context, args []string) int {
	return group("forgejo", forgejoUsage, map[string]func([]string) int{
		"register": func(a []string) int { return forgejoRegister(ctx, a) },
		"run":      func(a []string) int { return forgejoRun(ctx, a) },
	}, args)
}

// forgejoFlags are the flags both subcommands share.
type forgejoFlags struct {
	url, name, labels string
	nomad             nomadFlags
	// debugSSH and debugForks are `forgejo run`'s debug session policy.
	debugSSH, debugForks bool
	cache                *forgejo.CacheAccess // set by forgejo run's cache flags
}

func (f *forgejoFlags) add(fs *flag.FlagSet) {
	fs.StringVar(&f.url, "url", "", "the forge's root URL, e.g. https://forge.example.org/")
	fs.StringVar(&f.name, "name", defaultRunnerName, "the runner's name in the forge")
	fs.StringVar(&f.labels, "labels", "", "comma-separated labels (default: every label and alias of the Nomad catalog)")
	f.nomad.addWithToken(fs, "nomad-token")
}

func (f *forgejoFlags) store(c *api.Client) (*forgejo.NomadStore, error) {
	if f.url == "" {
		return nil, errors.New("--url is required")
	}
	path, err := forgejo.VariablePath(f.url, f.name)
	if err != nil {
		return nil, err
	}
	return &forgejo.NomadStore{API: c, Path: path}, nil
}

// labelsOrCatalog returns --labels, or the catalog's labels.
func (f *forgejoFlags) labelsOrCatalog(ctx context.Context, c *api.Client) ([]string, error) {
	if f.labels != "" {
		return forgejo.ParseLabels(f.labels), nil
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cat, err := (&nomad.Client{API: c}).Catalog(ctx)
	if err != nil {
		return nil, err
	}
	if len(cat) == 0 {
		return nil, errors.New("the Nomad catalog has no labels: run `solstice jobs sync` first, or pass --labels")
	}
	return forgejo.CatalogLabels(cat), nil
}

func forgejoRegister(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("forgejo register", flag.ContinueOnError)
	var f forgejoFlags
	f.add(fs)
	token := fs.String("token", "", "a runner registration token from the forge (or $SOLSTICE_FORGEJO_REGISTRATION_TOKEN)")
	if code, ok := parseFlags(fs, forgejoUsage, args); !ok {
		return code
	}
	orEnv(token, "SOLSTICE_FORGEJO_REGISTRATION_TOKEN") // not a flag default: usage text would print it
	err := func() error {
		c, err := f.nomad.client()
		if err != nil {
			return err
		}
		store, err := f.store(c)
		if err != nil {
			return err
		}
		labels, err := f.labelsOrCatalog(ctx, c)
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		creds, err := forgejo.Register(ctx, store, forgejo.Registration{URL: f.url, Token: *token, Name: f.name, Labels: labels, Version: version})
		if err != nil {
			return err
		}
		fmt.Printf("registered runner %q (id %d) with %s, labels %s; credentials in Nomad Variable %s\n",
			f.name, creds.ID, f.url, strings.Join(labels, ","), store.Path)
		return nil
	}()
	return exitCode("solstice forgejo register", err)
}

func forgejoRun(ctx context.Context, args []string) int {
	fs := flag.NewFlagSet("forgejo run", flag.ContinueOnError)
	var f forgejoFlags
	f.add(fs)
	capacity := fs.Int("capacity", 4, "most tasks in flight")
	listen := fs.String("listen", "127.0.0.1:9464", "address for /metrics and /healthz (empty: none)")
	token := fs.String("token", "", "a runner registration token from the forge: registers the runner if it is not yet (or no longer) registered (or $SOLSTICE_FORGEJO_REGISTRATION_TOKEN)")
	fs.BoolVar(&f.debugSSH, "debug-ssh", true, "allow debug SSH sessions into failed jobs' VMs for repositories that set SOLSTICE_DEBUG_SSH=true")
	fs.BoolVar(&f.debugForks, "debug-ssh-forks", false, "allow them for pull requests from forks and other repositories too")
	var cf cacheFlags
	cf.add(fs)
	if code, ok := parseFlags(fs, forgejoUsage, args); !ok {
		return code
	}
	orEnv(token, "SOLSTICE_FORGEJO_REGISTRATION_TOKEN") // not a flag default: usage text would print it
	log := hclog.New(&hclog.LoggerOptions{Name: "solstice-forgejo", Level: hclog.LevelFromString(envOr("SOLSTICE_LOG_LEVEL", "info"))})
	ca, stop, err := cf.serve(log.Named("cache"))
	if err != nil {
		log.Error("cache service", "error", err)
		return 1
	}
	defer stop()
	f.cache = ca
	if err := runForgejo(ctx, log, f, *capacity, *listen, *token); err != nil {
		log.Error("runner stopped", "error", err)
		return 1
	}
	return 0
}

func runForgejo(ctx context.Context, log hclog.Logger, f forgejoFlags, capacity int, listen, token string) error {
	c, err := f.nomad.client()
	if err != nil {
		return err
	}
	store, err := f.store(c)
	if err != nil {
		return err
	}
	var labels []string
	if f.labels != "" {
		labels = forgejo.ParseLabels(f.labels)
	}
	metrics := forgejo.NewMetrics()
	rt, err := forgejo.New(forgejo.Config{
		URL: f.url, Name: f.name, Labels: labels, Capacity: capacity, RegistrationToken: token, Version: version,
		Store: store, Nomad: &nomad.Client{API: c, Log: log.Named("nomad")}, Cache: f.cache,
		Log: log, Metrics: metrics,
		Debug:     debugssh.Policy{Disabled: !f.debugSSH, AllowForks: f.debugForks},
		DebugLock: c.Variables(),
	})
	if err != nil {
		return err
	}
	return serveWhileRunning(ctx, listen, metrics.Handler(), log, rt.Run)
}

// serveWhileRunning serves /metrics and /healthz on listen (when set)
// while run runs.
func serveWhileRunning(ctx context.Context, listen string, h http.Handler, log hclog.Logger, run func(context.Context) error) error {
	if listen == "" {
		return run(ctx)
	}
	srv, err := forge.Listen(listen, h)
	if err != nil {
		return err
	}
	log.Info("serving /metrics and /healthz", "addr", srv.Addr().String())
	defer func() {
		if err := srv.Close(); err != nil {
			log.Error("metrics server", "error", err)
		}
	}()
	return run(ctx)
}

// orEnv fills an empty flag from the environment.
func orEnv(v *string, name string) {
	if *v == "" {
		*v = os.Getenv(name)
	}
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
