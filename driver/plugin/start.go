package plugin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/nomad/structs"
	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/agentdisk"
	"github.com/solstice-ci/solstice/driver/agentport"
	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/task"
	"github.com/solstice-ci/solstice/driver/template"
	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// launch is one StartTask in progress. Every resource it creates registers
// an undo step, so a failure at any point leaves no process or file behind.
type launch struct {
	d        *Driver
	conf     *Config // the client config the task was checked against
	cfg      *drivers.TaskConfig
	tc       TaskConfig
	settings taskSettings
	inputs   taskInputs
	label    string
	img      *ImageConfig
	base     string // the image's read-only base in the cache
	vms      vm.Provider
	log      hclog.Logger
	st       task.State
	machine  vm.Machine
	// debug is the plan's debug session request (see setDebug).
	debug *contract.DebugSSH
	undo  []func()
	// agentDisk carries the guest agent into the VM (see useAgentDisk);
	// nil with noDisk saying why.
	agentDisk *agentdisk.Disk
	noDisk    string
	// clone is the template a warm start restores; nil for a cold boot.
	clone *warmClone
	// port is a clone's agent port (see attachPort).
	port *agentport.Conn
	// restored and reidentified are how long a clone's restore and its
	// identity reset took, for the Started event.
	restored, reidentified time.Duration
	// hostKey is the guest's host key (its seed's), which a clone gets
	// in place of the template's.
	hostKey *cloudinit.HostKey
	// authorizedKey is the task's login key as the guest lists it.
	authorizedKey string
}

func (l *launch) onFailure(f func()) { l.undo = append(l.undo, f) }

func (l *launch) rollback() {
	for i := len(l.undo) - 1; i >= 0; i-- {
		l.undo[i]()
	}
}

// StartTask boots a VM for the task and returns once the guest accepts SSH.
func (d *Driver) StartTask(cfg *drivers.TaskConfig) (*drivers.TaskHandle, *drivers.DriverNetwork, error) {
	if _, exists := d.tasks.Get(cfg.ID); exists {
		return nil, nil, fmt.Errorf("task %s is already running", cfg.ID)
	}
	l, err := d.newLaunch(cfg)
	if err != nil {
		return nil, nil, err
	}
	if l.tc.imageOnly() {
		return l.startImageAction() // solstice image pull/verify: no VM
	}
	if err := l.checkInputs(); err != nil {
		// Whoever follows the job learns why it never ran; nothing was
		// created yet, so there is nothing to roll back.
		l.log.Error("task input refused", "error", err)
		l.reportInfraError(err)
		return nil, nil, err
	}
	h, err := l.run()
	if err != nil {
		l.rollback()
		l.log.Error("task failed to start", "error", err)
		l.reportInfraError(err)
		return nil, nil, err
	}
	th := drivers.NewTaskHandle(task.StateVersion)
	th.Config = cfg
	st := h.State()
	if err := th.SetDriverState(&st); err != nil {
		h.Kill()
		l.rollback()
		return nil, nil, fmt.Errorf("save task state: %w", err)
	}
	d.tasks.Add(cfg.ID, h)
	go h.Run()
	return th, &drivers.DriverNetwork{
		PortMap: map[string]int{"ssh": st.SSHPort},
		IP:      st.SSHHost,
	}, nil
}

func (d *Driver) newLaunch(cfg *drivers.TaskConfig) (*launch, error) {
	l := &launch{d: d, cfg: cfg, vms: d.provider(), log: d.log.With("task", cfg.Name, "alloc", cfg.AllocID)}
	if err := cfg.DecodeDriverConfig(&l.tc); err != nil {
		return nil, fmt.Errorf("task %q config: %w", cfg.Name, err)
	}
	conf := d.cfg()
	l.conf = conf
	s, err := l.tc.settings(conf)
	if err != nil {
		return nil, fmt.Errorf("task %q config: %w", cfg.Name, err)
	}
	l.settings = s
	label, img, ok := conf.Resolve(l.tc.Image)
	if !ok {
		return nil, fmt.Errorf("task %q: unknown image %q: this client's catalog has %s",
			cfg.Name, l.tc.Image, listOrNone(conf.Names()))
	}
	if err := conf.Broken[label]; err != nil {
		return nil, fmt.Errorf("task %q: image %q is misconfigured on this client: %w", cfg.Name, label, err)
	}
	l.label, l.img = label, img
	return l, nil
}

func listOrNone(names []string) string {
	if len(names) == 0 {
		return "no images"
	}
	return strings.Join(names, ", ")
}

func (l *launch) run() (*task.Handle, error) {
	ctx, cancel := context.WithTimeout(l.d.ctx, l.settings.BootTimeout+imageFetchTimeout)
	defer cancel()
	l.createEvents()
	base, err := l.fetchImage(ctx)
	if err != nil {
		return nil, err
	}
	l.base = base
	h, err := l.bootWarmOrCold(ctx)
	if err != nil {
		return nil, err
	}
	if l.tc.Plan != "" {
		if err := l.launchJob(ctx, h); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// boot makes the task's disk and seed, starts QEMU and waits for a login.
func (l *launch) boot(ctx context.Context) (*task.Handle, error) {
	if err := l.prepare(ctx, l.base); err != nil {
		return nil, err
	}
	m, err := l.startQEMU(ctx)
	if err != nil {
		return nil, err
	}
	l.machine = m
	g := l.vms.Guest(l.st.Login)
	l.onFailure(func() { g.Close() })
	h := task.NewHandle(l.d.log, l.st, m, g)
	if err := l.waitBoot(h, m, g); err != nil {
		return nil, err
	}
	return h, nil
}

// imageFetchTimeout bounds a first download on top of the boot timeout.
const imageFetchTimeout = 2 * time.Hour

func (l *launch) fetchImage(ctx context.Context) (string, error) {
	l.d.emit(l.cfg, "Fetching image", fmt.Sprintf("image %s from the client's cache", l.label))
	src := imageSource(l.label, l.img)
	progress := &downloadReporter{label: l.label, now: time.Now, emit: func(msg string, a map[string]string) {
		l.d.emitAnnotated(l.cfg, msg, a)
	}}
	src.Progress = progress.report
	// Whether the image is cached is a node attribute (imageState); only
	// a source with a sha256 is looked up cheaply enough to ask.
	wasCached := true
	if src.SHA256 != "" {
		_, wasCached = l.d.cache().Cached(src)
	}
	base, err := l.vms.Image(ctx, src)
	if err != nil {
		return "", err
	}
	if !wasCached {
		l.d.refingerprint()
	}
	l.d.reprobeIfUnverified()
	return base, nil
}

// prepare makes the task's disk, key and seed.
func (l *launch) prepare(ctx context.Context, base string) error {
	vmDir := filepath.Join(l.cfg.TaskDir().Dir, "solstice-vm")
	if err := makePrivateDir(vmDir); err != nil {
		return err
	}
	l.onFailure(func() { os.RemoveAll(vmDir) })
	l.st = task.State{
		TaskConfig: l.cfg,
		Image:      l.label,
		VMDir:      vmDir,
		Overlay:    filepath.Join(vmDir, "disk.qcow2"),
		Seed:       filepath.Join(vmDir, l.img.Seed().FileName()),
		QMPSocket:  socketPath(l.d.runDir, l.cfg.ID),
		User:       l.img.User,
		PowerOff:   l.img.Guest().PowerOff,
		KeyPath:    filepath.Join(l.cfg.TaskDir().SecretsDir, "solstice-vm-ssh-key"),
	}
	d := vm.Disk{Base: base, BaseFormat: l.img.Format, Path: l.st.Overlay, Size: l.settings.DiskSize}
	if l.clone != nil { // on the template's frozen disk
		d.Base, d.BaseFormat, d.OnTemplate = l.clone.tpl.Path(template.DiskFile), "qcow2", true
	}
	err := l.vms.CreateDisk(ctx, d)
	if err != nil {
		return fmt.Errorf("image %q: %w", l.label, err)
	}
	// qemu-img leaves the overlay as the umask says; it is root's alone.
	if err := os.Chmod(l.st.Overlay, 0o600); err != nil {
		return fmt.Errorf("restrict the task's disk: %w", err)
	}
	return l.writeSeed()
}

// writeSeed makes the task's ephemeral login key, the guest's host key and
// the NoCloud seed that hands both to the guest. The host key's public half
// goes into the task state, so the very first login already insists on it;
// its private half exists only in the seed, in the task's vm dir, and goes
// with the task.
func (l *launch) writeSeed() error {
	key, err := guestssh.NewKey("solstice-vm " + l.cfg.AllocID)
	if err != nil {
		return err
	}
	hostKey, pin, err := newHostKey(hostname(l.cfg))
	if err != nil {
		return err
	}
	if err := os.WriteFile(l.st.KeyPath, key.PrivatePEM, 0o600); err != nil {
		return fmt.Errorf("store task ssh key: %w", err)
	}
	l.onFailure(func() { os.Remove(l.st.KeyPath) })
	l.st.HostKey = pin
	l.hostKey, l.authorizedKey = hostKey, key.AuthorizedKey
	seed := seedFor(l.img, l.cfg.AllocID, hostname(l.cfg), key.AuthorizedKey)
	seed.HostKey = hostKey
	return cloudinit.Write(l.st.Seed, l.img.Seed(), seed)
}

// seedFor is the seed that lets loginKey in as the image's user, in the
// shape the image's seed format reads: a nocloud seed creates the user
// with passwordless sudo; a nocloud-fat seed gives the key to the image's
// own user (cloud-init's default user, metadata-agent's root), whose
// rights the image decides.
func seedFor(img *ImageConfig, instance, host, loginKey string) cloudinit.Seed {
	s := cloudinit.Seed{InstanceID: instance, Hostname: host}
	if img.Seed() == cloudinit.FormatFAT {
		s.PublicKeys = []string{loginKey}
		return s
	}
	s.Users = []cloudinit.User{{
		Name: img.User, Sudo: cloudinit.PasswordlessSudo, Shell: "/bin/sh",
		SSHAuthorizedKeys: []string{loginKey},
	}}
	return s
}

// newHostKey makes a guest's ed25519 host key: the seed's copy and the
// public key (wire format) that logins pin.
func newHostKey(host string) (*cloudinit.HostKey, []byte, error) {
	k, err := guestssh.NewKey("root@" + host)
	if err != nil {
		return nil, nil, fmt.Errorf("make the guest's host key: %w", err)
	}
	return &cloudinit.HostKey{PrivatePEM: string(k.PrivatePEM), Public: k.AuthorizedKey}, k.Public, nil
}

// socketPath keeps QMP sockets under a short directory: alloc dirs can be
// too deep for the 108-byte unix socket path limit.
func socketPath(runDir, taskID string) string {
	return filepath.Join(runDir, shortID(taskID)+".qmp")
}

// defaultRunDir holds the QMP sockets.
const defaultRunDir = "/run/solstice-vm"

func hostname(cfg *drivers.TaskConfig) string {
	name := strings.ToLower(cfg.Name)
	name = strings.Map(func(r rune) rune {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') || r == '-' {
			return r
		}
		return '-'
	}, name)
	if len(name) > 40 {
		name = name[:40]
	}
	alloc := cfg.AllocID
	if len(alloc) > 8 {
		alloc = alloc[:8]
	}
	name = strings.Trim(name, "-")
	if name == "" {
		name = "vm" // a host name label starts with a letter or digit
	}
	return name + "-" + alloc
}

func (l *launch) startQEMU(ctx context.Context) (vm.Machine, error) {
	if err := os.MkdirAll(l.d.runDir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", l.d.runDir, err)
	}
	host, port, err := l.sshPort()
	if err != nil {
		return nil, err
	}
	l.st.SSHHost, l.st.SSHPort, l.st.Netns = host, port, l.netns()
	console, err := openConsole(l.cfg.StdoutPath)
	if err != nil {
		return nil, err
	}
	defer console.Close() // QEMU holds its own copy
	spec := l.d.qemuSpec(l.cfg, l.st)
	spec.Base, spec.BaseFormat = l.base, l.img.Format
	spec.SeedDisk = l.img.Seed() == cloudinit.FormatFAT
	spec.AgentDisk = l.useAgentDisk()
	l.restoreFrom(&spec)
	if err := l.attachPort(&spec); err != nil {
		return nil, fmt.Errorf("start qemu for image %q: %w", l.label, err)
	}
	if spec.User, err = l.d.qemuUser(spec.Accel); err != nil {
		return nil, fmt.Errorf("start qemu for image %q: %w", l.label, err)
	}
	// The egress policy matches QEMU by its group (spec.User's, the
	// isolation gid) in both network modes; in bridge mode its chain goes
	// into the namespace before QEMU does.
	if spec.Netns != "" {
		l.onFailure(func() { l.d.egress.forget(l.cfg.ID) })
		if err := l.d.egress.enterNetns(ctx, l.cfg, spec.Netns); err != nil {
			return nil, err
		}
	}
	l.onFailure(func() { os.Remove(l.st.QMPSocket) })
	l.d.emit(l.cfg, "Booting", fmt.Sprintf("image %s under %s%s, ssh on %s:%d", l.label, spec.Accel, l.warmNote(), host, port))
	started := time.Now()
	m, err := l.vms.Start(ctx, spec, qemu.Output{Console: console, Log: filepath.Join(l.st.VMDir, "qemu.log")})
	l.restored = time.Since(started)
	if spec.AgentPort != nil {
		spec.AgentPort.Close() // QEMU has its own, or failed
	}
	l.releaseTemplate() // QEMU has the template's files open, or failed
	if err != nil {
		return nil, fmt.Errorf("start qemu for image %q: %w", l.label, err)
	}
	l.onFailure(m.Kill)
	l.st.Process = m.Process()
	l.st.StartedAt = time.Now()
	return m, nil
}

func (d *Driver) qemuSpec(cfg *drivers.TaskConfig, st task.State) qemu.Spec {
	mem, cpus := 1024, 1
	if r := cfg.Resources; r != nil && r.NomadResources != nil {
		if m := r.NomadResources.Memory.MemoryMB; m > 0 {
			mem = int(m)
		}
		if n := len(r.NomadResources.Cpu.ReservedCores); n > 0 {
			cpus = n
		}
	}
	return qemu.Spec{
		Binary: d.cfg().QemuBinary, Name: shortID(cfg.ID), Accel: d.accelerator().Name,
		MemoryMB: mem, CPUs: cpus, Disk: st.Overlay, Seed: st.Seed,
		SSHHost: st.SSHHost, SSHPort: st.SSHPort, QMP: st.QMPSocket,
		PIDFile: filepath.Join(st.VMDir, "qemu.pid"), Netns: st.Netns,
	}
}

// sshPort picks where the guest's sshd is forwarded from: the Nomad port the
// task names, or else a free loopback port. Under bridge networking the
// forward lives in the allocation's namespace: on the port's "to" (where
// Nomad's port mapping delivers), or a fixed port nobody else uses there.
func (l *launch) sshPort() (string, int, error) {
	netns := l.netns()
	if len(l.tc.Ports) == 1 {
		p, err := l.namedPort(l.tc.Ports[0])
		if err != nil {
			return "", 0, err
		}
		if netns != "" {
			to := p.To
			if to <= 0 {
				to = p.Value
			}
			return "0.0.0.0", to, nil
		}
		host := p.HostIP
		if host == "" {
			host = "127.0.0.1"
		}
		return host, p.Value, nil
	}
	if netns != "" {
		return "127.0.0.1", 2222, nil
	}
	port, err := qemu.FreePort("127.0.0.1")
	return "127.0.0.1", port, err
}

func (l *launch) namedPort(label string) (structs.AllocatedPortMapping, error) {
	if r := l.cfg.Resources; r != nil && r.Ports != nil {
		if p, ok := r.Ports.Get(label); ok {
			return p, nil
		}
	}
	return structs.AllocatedPortMapping{}, fmt.Errorf("task %q: ports = [%q]: the group's network block has no port %q", l.cfg.Name, label, label)
}

// netns is the allocation's network namespace under bridge networking.
func (l *launch) netns() string {
	if ni := l.cfg.NetworkIsolation; ni != nil && ni.Mode == drivers.NetIsolationModeGroup {
		return ni.Path
	}
	return ""
}

// openConsole opens the task's stdout fifo for QEMU's serial console. Nomad's
// log collector reads it; if it is not there the open would block forever.
func openConsole(path string) (*os.File, error) {
	if path == "" || path == os.DevNull {
		return os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	}
	type result struct {
		f   *os.File
		err error
	}
	ch := make(chan result, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0)
		ch <- result{f, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			return nil, fmt.Errorf("open task stdout: %w", r.err)
		}
		return r.f, nil
	case <-time.After(30 * time.Second):
		return nil, errors.New("open task stdout: no log collector is reading it")
	}
}

// waitBoot waits for the guest to accept an SSH login within boot_timeout.
func (l *launch) waitBoot(h *task.Handle, m vm.Machine, g vm.Guest) error {
	ctx, cancel := context.WithTimeout(l.d.ctx, l.settings.BootTimeout)
	defer cancel()
	go func() {
		select {
		case <-m.Exited():
			cancel()
		case <-ctx.Done():
		}
	}()
	err := l.login(ctx, g)
	select {
	case <-m.Exited():
		return fmt.Errorf("image %q: the VM powered off or crashed during boot (qemu exit code %d)", l.label, m.ExitCode())
	default:
	}
	switch {
	case err != nil && ctx.Err() == nil:
		return fmt.Errorf("image %q: %w", l.label, err)
	case err != nil:
		return fmt.Errorf("image %q: boot timeout: no ssh login within %s: %w", l.label, l.settings.BootTimeout, err)
	}
	l.st.BootTime = time.Since(l.st.StartedAt)
	h.UpdateState(func(s *task.State) { s.BootTime = l.st.BootTime })
	l.log.Info("guest is up", "boot_time", l.st.BootTime.Round(time.Millisecond).String())
	l.d.emit(l.cfg, "Started", fmt.Sprintf("guest up after %s%s", l.st.BootTime.Round(100*time.Millisecond), l.warmTimes()))
	return nil
}

// login waits for a cold guest's SSH login, or gives a warm clone its
// identity over the agent port, with no login: the job starts over the
// port too, and later logins use the task's key and host key.
func (l *launch) login(ctx context.Context, g vm.Guest) error {
	if l.clone == nil {
		return g.WaitReady(ctx)
	}
	if err := l.reidentify(ctx); err != nil {
		return err
	}
	return l.releasePort(ctx, g)
}

// shortID names a task in short paths and process titles. Nomad task ids
// are long (alloc id, task name, hash); 12 hex digits of their hash are
// plenty to tell tasks on one client apart.
func shortID(taskID string) string {
	sum := sha256.Sum256([]byte(taskID))
	return hex.EncodeToString(sum[:6])
}
