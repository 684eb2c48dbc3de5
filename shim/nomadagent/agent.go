// Package nomadagent runs a single-node Nomad agent (server and client in
// one process) on 127.0.0.1 with the solstice-vm plugin loaded: the
// embedded default behind `solstice run` and the real Nomad the e2e tests
// use. It also runs a server alone or a client of other servers, which
// the e2e tests combine into a cluster on one host.
package nomadagent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/template"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Config says which agent to run and with what.
type Config struct {
	Binary  string // the nomad executable
	DataDir string // state, alloc dirs and the agent's log live here
	// Plugin is the solstice-vm binary; empty for none. Nomad tries every
	// executable in its plugin_dir as a plugin and refuses to start on one
	// that is not, so the agent gets a plugin_dir of its own holding only a
	// link to this binary.
	Plugin string
	// PluginConfig is the body of `plugin "solstice-vm" { config { … } }`
	// in HCL; empty leaves the plugin block out.
	PluginConfig string
	// RawExec enables the raw_exec driver (tests use it for tiny jobs).
	RawExec bool
	// NodeMeta is added to the client's meta.
	NodeMeta map[string]string
	// CNIPath, when set, lets groups use bridge networking with the CNI
	// plugins there (Debian's containernetworking-plugins: /usr/lib/cni).
	CNIPath string
	// Consul, when set, is the host:port of a Consul agent's HTTP API:
	// services with provider "consul" register there. Unset, Nomad still
	// looks for Consul at its default 127.0.0.1:8500.
	Consul string
	// ACL enables Nomad's ACL system; Bootstrap then makes the first
	// management token, which Client uses.
	ACL bool

	// Role is the part of Nomad the agent runs: both (the zero value, a
	// single-node agent), only a server, or only a client of Servers.
	Role Role
	// Name is the agent's node name; empty is "solstice-local".
	Name string
	// Servers are the RPC addresses (host:port) a client-only agent joins.
	Servers []string
	// HeartbeatGrace and MinHeartbeatTTL, when set, replace a server's
	// defaults (10s each): a client that stops heartbeating is marked down,
	// and its allocations lost, at most 2×MinHeartbeatTTL+HeartbeatGrace
	// after its last heartbeat.
	HeartbeatGrace  time.Duration
	MinHeartbeatTTL time.Duration
	// CgroupParent, when set, is the client's cgroup_parent: two clients
	// on one host must not share Nomad's default, or each rewrites the
	// cpusets the other reserved.
	CgroupParent string
	// NetworkInterface, when set, is the client's network_interface: the
	// host address Nomad gives the allocations' ports. solstice run's
	// local agent uses "lo", so a debug session's port answers on the
	// loopback address alone.
	NetworkInterface string
}

// Role is which part of Nomad an agent runs.
type Role int

// The roles.
const (
	ServerAndClient Role = iota
	ServerOnly
	ClientOnly
)

func (r Role) server() bool { return r != ClientOnly }
func (r Role) client() bool { return r != ServerOnly }

// Agent is a running Nomad agent.
type Agent struct {
	cfg     Config
	Addr    string // http://127.0.0.1:PORT
	ports   ports
	cmd     *exec.Cmd
	exited  chan struct{}
	LogPath string
	// Token is the ACL token Client sends (see Bootstrap).
	Token string
}

type ports struct{ HTTP, RPC, Serf int }

const agentHCL = `
name       = "{{.NodeName}}"
data_dir   = "{{.DataDir}}"
bind_addr  = "127.0.0.1"
log_level  = "DEBUG"
{{- if .Plugin}}
plugin_dir = "{{.DataDir}}/plugins"
{{- end}}
disable_update_check = true

ports {
  http = {{.Ports.HTTP}}
  rpc  = {{.Ports.RPC}}
  serf = {{.Ports.Serf}}
}

advertise {
  http = "127.0.0.1"
  rpc  = "127.0.0.1"
  serf = "127.0.0.1"
}

{{- if .Role.Server}}
server {
  enabled          = true
  bootstrap_expect = 1
{{- if .HeartbeatGrace}}
  heartbeat_grace   = "{{.HeartbeatGrace}}"
{{- end}}
{{- if .MinHeartbeatTTL}}
  min_heartbeat_ttl = "{{.MinHeartbeatTTL}}"
{{- end}}
}
{{- end}}
{{if .Role.Client}}
client {
  enabled = true
  servers = [{{range $i, $s := .JoinServers}}{{if $i}}, {{end}}"{{$s}}"{{end}}]
{{- if .CNIPath}}
  cni_path = "{{.CNIPath}}"
{{- end}}
{{- if .CgroupParent}}
  cgroup_parent = "{{.CgroupParent}}"
{{- end}}
{{- if .NetworkInterface}}
  network_interface = "{{.NetworkInterface}}"
{{- end}}
  meta {
{{- range $k, $v := .NodeMeta}}
    "{{$k}}" = "{{$v}}"
{{- end}}
  }
}
{{- end}}
{{if .RawExec}}
plugin "raw_exec" {
  config {
    enabled = true
  }
}
{{end}}
{{- if .Consul}}
consul {
  address = "{{.Consul}}"
}
{{- end}}
{{- if .ACL}}
acl {
  enabled = true
}
{{- end}}
{{- if .PluginConfig}}
plugin "solstice-vm" {
  config {
{{.PluginConfig}}
  }
}
{{- end}}
`

// Start writes the agent config under DataDir and starts the agent. The
// agent runs in its own process group so that stopping it also stops the
// plugins it spawned.
func Start(ctx context.Context, cfg Config) (*Agent, error) {
	p, err := freePorts()
	if err != nil {
		return nil, err
	}
	a := &Agent{cfg: cfg, ports: p, Addr: fmt.Sprintf("http://127.0.0.1:%d", p.HTTP), exited: make(chan struct{})}
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return nil, fmt.Errorf("create nomad data dir: %w", err)
	}
	if err := linkPlugin(cfg); err != nil {
		return nil, err
	}
	confPath := filepath.Join(cfg.DataDir, "agent.hcl")
	if err := a.writeConfig(confPath); err != nil {
		return nil, err
	}
	return a, a.start(ctx, confPath)
}

// linkPlugin puts a link to the plugin, named as the plugin block's label
// must be, into the agent's own plugin_dir.
func linkPlugin(cfg Config) error {
	if cfg.Plugin == "" {
		return nil
	}
	dir := filepath.Join(cfg.DataDir, "plugins")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create plugin dir: %w", err)
	}
	target, err := filepath.Abs(cfg.Plugin)
	if err != nil {
		return err
	}
	link := filepath.Join(dir, "solstice-vm")
	os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		return fmt.Errorf("link the solstice-vm plugin: %w", err)
	}
	return nil
}

func (a *Agent) writeConfig(path string) error {
	var buf bytes.Buffer
	tmpl := template.Must(template.New("agent").Parse(agentHCL))
	err := tmpl.Execute(&buf, struct {
		Config
		Ports       ports
		NodeName    string
		Role        roleView
		JoinServers []string
	}{a.cfg, a.ports, a.NodeName(), roleView{a.cfg.Role.server(), a.cfg.Role.client()}, a.joinServers()})
	if err != nil {
		return fmt.Errorf("render nomad agent config: %w", err)
	}
	return os.WriteFile(path, buf.Bytes(), 0o644)
}

func (a *Agent) start(ctx context.Context, confPath string) error {
	a.LogPath = filepath.Join(a.cfg.DataDir, "agent.log")
	logf, err := os.OpenFile(a.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open nomad agent log: %w", err)
	}
	defer logf.Close()
	a.cmd = exec.Command(a.cfg.Binary, "agent", "-config", confPath)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	a.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := a.cmd.Start(); err != nil {
		return fmt.Errorf("start nomad agent %s: %w", a.cfg.Binary, err)
	}
	go func() {
		a.cmd.Wait()
		close(a.exited)
	}()
	if err := a.waitLeader(ctx); err != nil {
		a.Stop(10 * time.Second)
		return fmt.Errorf("%w\n%s", err, a.logTail())
	}
	return nil
}

type roleView struct{ Server, Client bool }

// NodeName is the agent's node name.
func (a *Agent) NodeName() string {
	if a.cfg.Name == "" {
		return "solstice-local"
	}
	return a.cfg.Name
}

// RPCAddr is the agent's RPC address, for clients to join.
func (a *Agent) RPCAddr() string { return fmt.Sprintf("127.0.0.1:%d", a.ports.RPC) }

// joinServers is what the client block's servers lists: the agent itself
// unless it is a client of others.
func (a *Agent) joinServers() []string {
	if a.cfg.Role == ClientOnly {
		return a.cfg.Servers
	}
	return []string{a.RPCAddr()}
}

// PID is the agent's process id.
func (a *Agent) PID() int { return a.cmd.Process.Pid }

// Client returns an API client for the agent.
func (a *Agent) Client() (*api.Client, error) {
	return api.NewClient(&api.Config{Address: a.Addr, SecretID: a.Token})
}

func (a *Agent) waitLeader(ctx context.Context) error {
	c, err := a.Client()
	if err != nil {
		return err
	}
	return a.poll(ctx, "a server leader", func() (bool, error) {
		leader, err := c.Status().Leader()
		return err == nil && leader != "", nil
	})
}

// WaitNode waits until the client node is ready and, when driver is not
// empty, that driver is detected and healthy on it.
func (a *Agent) WaitNode(ctx context.Context, driver string) (*api.Node, error) {
	c, err := a.Client()
	if err != nil {
		return nil, err
	}
	var node *api.Node
	what := "a ready client node"
	if driver != "" {
		what += " with a healthy " + driver + " driver"
	}
	err = a.poll(ctx, what, func() (bool, error) {
		stub := a.ownNode(c)
		if stub == nil || stub.Status != "ready" {
			return false, nil
		}
		n, _, err := c.Nodes().Info(stub.ID, nil)
		if err != nil {
			return false, nil
		}
		node = n
		if driver == "" {
			return true, nil
		}
		di := n.Drivers[driver]
		return di != nil && di.Detected && di.Healthy, nil
	})
	return node, err
}

// ownNode finds this agent's node among the cluster's by its name.
func (a *Agent) ownNode(c *api.Client) *api.NodeListStub {
	stubs, _, err := c.Nodes().List(nil)
	if err != nil {
		return nil
	}
	for _, s := range stubs {
		if s.Name == a.NodeName() {
			return s
		}
	}
	return nil
}

// poll calls check until it says done, the agent dies or ctx ends.
func (a *Agent) poll(ctx context.Context, what string, check func() (bool, error)) error {
	for {
		done, err := check()
		if err != nil {
			return err
		}
		if done {
			return nil
		}
		select {
		case <-a.exited:
			return fmt.Errorf("nomad agent exited while waiting for %s", what)
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stop interrupts the agent (a graceful shutdown), waits up to grace, then
// kills its whole process group. It is safe to call more than once.
func (a *Agent) Stop(grace time.Duration) error {
	if a.cmd == nil || a.cmd.Process == nil {
		return nil
	}
	select {
	case <-a.exited:
		return nil
	default:
	}
	_ = a.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-a.exited:
		return nil
	case <-time.After(grace):
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	<-a.exited
	return errors.New("nomad agent did not stop in time and was killed")
}

// Kill kills the agent and the plugins it spawned (its process group) at
// once, as a crash or a power cut would; processes in sessions of their
// own (QEMU) live on. It waits for the agent to be gone.
func (a *Agent) Kill() {
	if a.cmd == nil || a.cmd.Process == nil {
		return
	}
	_ = syscall.Kill(-a.cmd.Process.Pid, syscall.SIGKILL)
	<-a.exited
}

// Exited is closed when the agent process has exited.
func (a *Agent) Exited() <-chan struct{} { return a.exited }

func (a *Agent) logTail() string {
	data, err := os.ReadFile(a.LogPath)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) > 30 {
		lines = lines[len(lines)-30:]
	}
	return "nomad agent log (last lines):\n" + strings.Join(lines, "\n")
}

func freePorts() (ports, error) {
	var p [3]int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for i := range p {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return ports{}, fmt.Errorf("find free ports for nomad: %w", err)
		}
		ls = append(ls, l)
		p[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports{HTTP: p[0], RPC: p[1], Serf: p[2]}, nil
}

// Restart stops the agent gracefully and starts it again with the same
// config, data dir and ports, as an operator restarting a client would.
func (a *Agent) Restart(ctx context.Context, grace time.Duration) error {
	if err := a.Stop(grace); err != nil {
		return err
	}
	a.exited = make(chan struct{})
	return a.start(ctx, filepath.Join(a.cfg.DataDir, "agent.hcl"))
}

// Unmount detaches what the client mounted under the data dir (each task's
// secrets dir is a tmpfs) so the directory can be removed once the agent
// has stopped.
func (a *Agent) Unmount() error {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mount table: %w", err)
	}
	var errs []error
	for _, mp := range mountsUnder(string(data), a.cfg.DataDir) {
		if err := syscall.Unmount(mp, syscall.MNT_DETACH); err != nil {
			errs = append(errs, fmt.Errorf("unmount %s: %w", mp, err))
		}
	}
	return errors.Join(errs...)
}

// mountsUnder lists mount points below dir, deepest first.
func mountsUnder(mountinfo, dir string) []string {
	var mps []string
	prefix := strings.TrimSuffix(dir, "/") + "/"
	for _, line := range strings.Split(mountinfo, "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], prefix) {
			mps = append(mps, f[4])
		}
	}
	for i, j := 0, len(mps)-1; i < j; i, j = i+1, j-1 {
		mps[i], mps[j] = mps[j], mps[i]
	}
	return mps
}

// DataDir is the agent's data directory.
func (a *Agent) DataDir() string { return a.cfg.DataDir }
