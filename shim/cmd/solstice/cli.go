package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// The CLI's conventions, shared by every command: help (-h, --help) goes
// to stdout with exit status 0; a usage error goes to stderr with status 2,
// prefixed "solstice <command>:"; a failure exits 1 (solstice run: its own
// codes, see runUsage).
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

// defaultRunnerName is a runner's name when --name is not given: the same
// as the runner_name default of jobspecs/runner-shims.nomad.hcl, so a
// runner registered by hand is the one the service job runs. (Not the
// host name: a shim moved to another client must find its credentials.)
const defaultRunnerName = "solstice"

// isHelp reports whether arg asks for help.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// parseFlags parses a leaf command's flags. ok is false when the command
// must not go on: code is then its exit status (0 after help).
func parseFlags(fs *flag.FlagSet, usage string, args []string) (code int, ok bool) {
	fs.SetOutput(io.Discard) // the flag package's own messages: we print ours
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		printUsage(os.Stdout, fs, usage)
		return exitOK, false
	case err != nil:
		fmt.Fprintf(os.Stderr, "solstice %s: %v\n\n", fs.Name(), err)
		printUsage(os.Stderr, fs, usage)
		return exitUsage, false
	}
	return exitOK, true
}

// usageError reports a wrong use of the command's arguments.
func usageError(fs *flag.FlagSet, usage, format string, args ...any) int {
	fmt.Fprintf(os.Stderr, "solstice %s: %s\n\n", fs.Name(), fmt.Sprintf(format, args...))
	printUsage(os.Stderr, fs, usage)
	return exitUsage
}

func printUsage(w io.Writer, fs *flag.FlagSet, usage string) {
	fmt.Fprint(w, strings.TrimRight(usage, "\n")+"\n")
	var opts bytes.Buffer
	fs.SetOutput(&opts)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	if opts.Len() > 0 {
		fmt.Fprintf(w, "\noptions:\n%s", opts.String())
	}
}

// group runs a command made of subcommands (solstice jobs, forgejo, …).
func group(name, usage string, subs map[string]func([]string) int, args []string) int {
	switch {
	case len(args) == 0:
		fmt.Fprintf(os.Stderr, "solstice %s: a subcommand is required\n\n%s", name, usage)
		return exitUsage
	case isHelp(args[0]):
		fmt.Print(usage)
		return exitOK
	}
	if fn, ok := subs[args[0]]; ok {
		return fn(args[1:])
	}
	fmt.Fprintf(os.Stderr, "solstice %s: unknown subcommand %q\n\n%s", name, args[0], usage)
	return exitUsage
}

// nomadFlags are Nomad's own connection flags, which every command that
// talks to Nomad takes; unset, each falls back to Nomad's environment
// variable (NOMAD_ADDR, NOMAD_TOKEN, …) as the nomad CLI does.
type nomadFlags struct {
	address, region, namespace    string
	token                         string
	caCert, clientCert, clientKey string
	tlsServerName                 string
	tlsSkipVerify                 bool
}

func (n *nomadFlags) add(fs *flag.FlagSet) { n.addWithToken(fs, "token") }

// addWithToken names the token flag: the forge commands keep -token for
// the forge's registration token, as act_runner and GitHub's config.sh do,
// so theirs is -nomad-token.
func (n *nomadFlags) addWithToken(fs *flag.FlagSet, tokenFlag string) {
	fs.StringVar(&n.address, "address", "", "the Nomad HTTP API address (or $NOMAD_ADDR; default http://127.0.0.1:4646)")
	fs.StringVar(&n.region, "region", "", "the Nomad region (or $NOMAD_REGION)")
	fs.StringVar(&n.namespace, "namespace", "", "the Nomad namespace (or $NOMAD_NAMESPACE)")
	fs.StringVar(&n.token, tokenFlag, "", "the Nomad ACL token (or $NOMAD_TOKEN)")
	fs.StringVar(&n.caCert, "ca-cert", "", "CA certificate to verify Nomad's TLS certificate (or $NOMAD_CACERT)")
	fs.StringVar(&n.clientCert, "client-cert", "", "client certificate for Nomad's TLS (or $NOMAD_CLIENT_CERT)")
	fs.StringVar(&n.clientKey, "client-key", "", "client key for Nomad's TLS (or $NOMAD_CLIENT_KEY)")
	fs.StringVar(&n.tlsServerName, "tls-server-name", "", "server name to verify in Nomad's TLS certificate (or $NOMAD_TLS_SERVER_NAME)")
	fs.BoolVar(&n.tlsSkipVerify, "tls-skip-verify", false, "do not verify Nomad's TLS certificate (or $NOMAD_SKIP_VERIFY)")
}

// set reports whether the flags or the environment name a cluster.
func (n *nomadFlags) set() bool {
	return n.address != "" || os.Getenv("NOMAD_ADDR") != ""
}

// config is api.DefaultConfig (the environment) with the flags on top.
func (n *nomadFlags) config() *api.Config {
	c := api.DefaultConfig()
	override := func(dst *string, v string) {
		if v != "" {
			*dst = v
		}
	}
	override(&c.Address, n.address)
	override(&c.Region, n.region)
	override(&c.Namespace, n.namespace)
	override(&c.SecretID, n.token)
	override(&c.TLSConfig.CACert, n.caCert)
	override(&c.TLSConfig.ClientCert, n.clientCert)
	override(&c.TLSConfig.ClientKey, n.clientKey)
	override(&c.TLSConfig.TLSServerName, n.tlsServerName)
	if n.tlsSkipVerify {
		c.TLSConfig.Insecure = true
	}
	return c
}

func (n *nomadFlags) client() (*api.Client, error) {
	c, err := api.NewClient(n.config())
	if err != nil {
		return nil, fmt.Errorf("nomad client: %w", err)
	}
	return c, nil
}
