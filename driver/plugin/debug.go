package plugin

import (
	"context"
	"fmt"
	"io"

	"github.com/solstice-ci/solstice/driver/debugssh"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/task"
	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// setDebug arranges the debug session a plan asked for (l.debug): if the
// job fails, the handle keeps the VM while the session runs, or records
// why no session opens. A plan without a request changes nothing.
func (l *launch) setDebug(h *task.Handle, m vm.Machine) {
	req := l.debug
	if req == nil {
		return
	}
	events, stdout := l.st.Events, l.cfg.StdoutPath
	log := l.log.With("debug_user", req.User)
	s, refusal := l.debugSession(h, m)
	h.SetDebug(func(ctx context.Context) {
		out, err := openConsole(stdout)
		if err != nil {
			log.Warn("debug session: no task stdout; the connection line goes to the events only", "error", err)
			out = nil
		}
		var w io.Writer
		if out != nil {
			defer out.Close()
			w = out
		}
		emit := func(ev contract.Event) error { return jobrun.Record(events, w, ev) }
		if s == nil {
			log.Info("no debug session", "reason", refusal)
			if err := debugssh.Refuse(emit, refusal); err != nil {
				log.Warn("could not record the debug refusal", "error", err)
			}
			return
		}
		s.Emit, s.Log = emit, log
		if _, err := s.Run(ctx); err != nil {
			log.Warn("debug session", "error", err)
		}
	})
}

// debugSession builds the session, or says why this task cannot have one.
func (l *launch) debugSession(h *task.Handle, m vm.Machine) (*debugssh.Session, string) {
	if l.conf.DebugSSHHost == "" {
		return nil, "debug sessions are off on this Nomad client (debug_ssh_host is not set in its solstice-vm plugin config)"
	}
	if l.tc.DebugPort == "" {
		return nil, "the job's parent job names no debug_port for a session to listen on"
	}
	fw, ok := m.(vm.Forwarder)
	if !ok {
		return nil, "this VM cannot forward a port to its sshd"
	}
	bind, public, err := l.debugAddr()
	if err != nil {
		return nil, err.Error()
	}
	return &debugssh.Session{
		Request: l.debug,
		Host:    l.conf.DebugSSHHost, Port: public, User: l.st.User,
		WorkDir: l.workDir(),
		TTL:     l.conf.limits.debugMax,
		Guest:   debugssh.SSHGuest(h.SSH),
		Forward: forward{m: fw, host: bind.host, port: bind.port},
	}, ""
}

type hostPort struct {
	host string
	port int
}

// debugAddr is where the session's forward listens (bind: the Nomad port's
// host address, or in the allocation's namespace its "to") and the port
// users connect to (the Nomad port's value).
func (l *launch) debugAddr() (hostPort, int, error) {
	p, err := l.namedPort(l.tc.DebugPort)
	if err != nil {
		return hostPort{}, 0, fmt.Errorf("debug_port: %w", err)
	}
	if l.netns() != "" {
		to := p.To
		if to <= 0 {
			to = p.Value
		}
		return hostPort{"0.0.0.0", to}, p.Value, nil
	}
	host := p.HostIP
	if host == "" {
		host = "127.0.0.1"
	}
	return hostPort{host, p.Value}, p.Value, nil
}

// workDir is the guest's runner.workspace: the image's work root, or the
// agent's default under its root.
func (l *launch) workDir() string {
	if g := l.img.Guest().Settings(); g != nil && g.WorkRoot != "" {
		return g.WorkRoot
	}
	return contract.GuestRoot + "/work"
}

// forward is a session's port on the VM's user-mode network.
type forward struct {
	m    vm.Forwarder
	host string
	port int
}

func (f forward) Open(ctx context.Context) error  { return f.m.AddForward(ctx, f.host, f.port) }
func (f forward) Close(ctx context.Context) error { return f.m.RemoveForward(ctx, f.host, f.port) }
