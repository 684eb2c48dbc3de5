package localrun

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/jobspecs"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/nomadagent"
)

// Local describes the embedded default: a single-node Nomad agent on this
// machine with the solstice-vm plugin and one image, the test guest.
type Local struct {
	Nomad    string // nomad binary
	Plugin   string // the solstice-vm binary (make build embeds the guest agents in it)
	Image    string // qcow2 served as runs-on: solstice-test
	CacheDir string // the driver's image cache
	DataDir  string // the agent's data dir (a temp dir when empty)
	// DebugSSHMax bounds a debug session (the plugin's debug_ssh_max);
	// zero keeps the driver's default.
	DebugSSHMax time.Duration
}

// localDebugHost is where a local agent's debug sessions listen: the agent
// gives ports on the loopback interface only (startLocal), so a failed
// job's sshd is never exposed beyond this machine.
const localDebugHost = "127.0.0.1"

// localLabel is the only label of the embedded default.
const localLabel = "solstice-test"

func (l Local) pluginConfig() (string, error) {
	sum, err := os.ReadFile(l.Image + ".sha256")
	if err != nil {
		return "", fmt.Errorf("the image's checksum file: %w", err)
	}
	debugMax := ""
	if l.DebugSSHMax > 0 {
		debugMax = fmt.Sprintf("debug_ssh_max = %q", l.DebugSSHMax.String())
	}
	return fmt.Sprintf(`
    cache_dir   = %q
    accelerator = "auto"
    debug_ssh_host = %q
    %s
    image %q {
      source  = %q
      sha256  = %q
      format  = "qcow2"
      os      = "linux"
      user    = "solstice"
      aliases = ["debian-test"]
    }`, l.CacheDir, localDebugHost, debugMax, localLabel, "file://"+l.Image, strings.Fields(string(sum))[0]), nil
}

// startLocal starts the agent, waits for the driver and registers the
// label's parent job. The caller stops the agent.
func startLocal(ctx context.Context, l Local, say func(string, ...any)) (*nomadagent.Agent, error) {
	conf, err := l.pluginConfig()
	if err != nil {
		return nil, err
	}
	if l.DataDir == "" {
		if l.DataDir, err = os.MkdirTemp("", "solstice-run-nomad-"); err != nil {
			return nil, err
		}
	}
	say("starting a local Nomad agent (data in %s)", l.DataDir)
	a, err := nomadagent.Start(ctx, nomadagent.Config{
		Binary: l.Nomad, DataDir: l.DataDir, Plugin: l.Plugin, PluginConfig: conf,
		NetworkInterface: "lo",
	})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if _, err := a.WaitNode(wctx, "solstice-vm"); err != nil {
		a.Stop(30 * time.Second)
		return nil, fmt.Errorf("%w (agent log: %s)", err, a.LogPath)
	}
	c, err := a.Client()
	if err == nil {
		err = registerEmbedded(ctx, c)
	}
	if err != nil {
		a.Stop(30 * time.Second)
		return nil, err
	}
	return a, nil
}

// registerEmbedded registers the built-in label's parent job from the
// jobspecs compiled into the binary.
func registerEmbedded(ctx context.Context, c *api.Client) error {
	dir, err := os.MkdirTemp("", "solstice-jobspecs-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	src, err := fs.ReadFile(jobspecs.Labels, "labels/"+localLabel+".nomad.hcl")
	if err != nil {
		return err
	}
	file := filepath.Join(dir, localLabel+".nomad.hcl")
	if err := os.WriteFile(file, src, 0o644); err != nil {
		return err
	}
	_, err = (&nomad.Client{API: c}).Sync(ctx, []string{file})
	return err
}
