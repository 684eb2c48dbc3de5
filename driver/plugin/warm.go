package plugin

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/driver/agentdisk"
	"github.com/solstice-ci/solstice/driver/agentport"
	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/jobrun"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/template"
	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// warmStarts is the driver's template store and the builds it runs in the
// background (see docs/warm-starts.md).
type warmStarts struct {
	mu    sync.Mutex
	store *template.Store
	dir   string
	qemu  map[string]string // qemu binary -> its version line
}

// warmClone is the template a launch starts from, held until QEMU has
// opened its files.
type warmClone struct {
	tpl       *template.Template
	release   func()
	agentDisk agentdisk.Disk // the template's, so the clone's too
}

// templateStore opens the store under the configured dir, once per dir.
func (d *Driver) templateStore(dir string) (*template.Store, error) {
	d.warm.mu.Lock()
	defer d.warm.mu.Unlock()
	if d.warm.store != nil && d.warm.dir == dir {
		return d.warm.store, nil
	}
	s, err := template.Open(dir)
	if err != nil {
		return nil, err
	}
	d.warm.store, d.warm.dir = s, dir
	return s, nil
}

// templateKey is what the launch's template must match, and the agent
// disk that template and clones have: it is part of their devices, so a
// clone's agent is read from it like a cold boot's, never uploaded.
func (l *launch) templateKey() (template.Key, agentdisk.Disk, error) {
	disk, err := l.agentDiskImage()
	if err != nil {
		return template.Key{}, disk, fmt.Errorf("no agent disk for a template: %w", err)
	}
	spec := l.d.qemuSpec(l.cfg, l.st)
	ident := l.img.SHA256
	if ident == "" {
		// A file source without a checksum: the cached base's size and
		// mtime stand for its content.
		st, err := os.Stat(l.base)
		if err != nil {
			return template.Key{}, disk, fmt.Errorf("stat base image: %w", err)
		}
		ident = fmt.Sprintf("%s:%d:%d", l.base, st.Size(), st.ModTime().UnixNano())
	}
	qv, err := l.d.qemuVersion(spec.Binary)
	if err != nil {
		return template.Key{}, disk, err
	}
	return template.Key{
		Image: l.label, ImageIdentity: ident,
		MemoryMB: spec.MemoryMB, CPUs: spec.CPUs, DiskSize: l.settings.DiskSize,
		Accel: spec.Accel, QEMUVersion: qv, PluginVersion: Version,
		AgentVersion: disk.Header, SeedFormat: string(l.img.Seed()), User: l.img.User,
		Layout: template.CurrentLayout,
	}, disk, nil
}

// qemuVersion is the binary's --version line, remembered per binary.
func (d *Driver) qemuVersion(binary string) (string, error) {
	d.warm.mu.Lock()
	defer d.warm.mu.Unlock()
	if v, ok := d.warm.qemu[binary]; ok {
		return v, nil
	}
	ctx, cancel := context.WithTimeout(d.ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("read the version of %s: %w", binary, err)
	}
	m := qemuVersionRe.FindString(string(out))
	if d.warm.qemu == nil {
		d.warm.qemu = map[string]string{}
	}
	d.warm.qemu[binary] = m
	return m, nil
}

// warmTemplate returns the template this launch starts from, or nil with
// the reason in a task event: then the task boots cold, and a missing
// template is built in the background for the tasks after it.
func (l *launch) warmTemplate() *warmClone {
	reason, c := l.findTemplate()
	if c != nil {
		return c
	}
	if reason != "" {
		l.log.Info("cold start", "reason", reason)
		l.d.emit(l.cfg, "Cold start", reason)
	}
	return nil
}

// findTemplate looks the template up; an empty reason means warm starts
// are off for this task and nothing needs saying.
func (l *launch) findTemplate() (string, *warmClone) {
	if !l.conf.WarmStarts || !l.img.warm() {
		return "", nil
	}
	if !isHost(l.vms) {
		return "", nil
	}
	if l.img.OS != "linux" {
		return fmt.Sprintf("warm starts are not available for %s guests yet (no identity reset for them)", l.img.OS), nil
	}
	key, disk, err := l.templateKey()
	if err != nil {
		return "no warm start: " + err.Error(), nil
	}
	store, err := l.d.templateStore(l.conf.templateDir())
	if err != nil {
		return "no warm start: " + err.Error(), nil
	}
	tpl, release, err := store.Acquire(key)
	if err == nil {
		return "", &warmClone{tpl: tpl, release: release, agentDisk: disk}
	}
	if !errors.Is(err, template.ErrBuilding) {
		go l.d.buildTemplate(store, key, l.templateBuildSpec(disk))
	}
	return fmt.Sprintf("no warm start from template %s: %v", key.ID(), err), nil
}

// isHost tells the real provider, whose machines can be saved, from a
// test's fake.
func isHost(p vm.Provider) bool {
	_, ok := p.(*vm.Host)
	return ok
}

// templateBuild is what a background build needs from the launch that
// found no template.
type templateBuild struct {
	img       *ImageConfig
	agentDisk agentdisk.Disk
	label     string
	base      string
	spec      qemu.Spec // the task's, for memory, cpus and accelerator
	vms       vm.Provider
}

func (l *launch) templateBuildSpec(disk agentdisk.Disk) templateBuild {
	return templateBuild{img: l.img, agentDisk: disk, label: l.label, base: l.base, spec: l.d.qemuSpec(l.cfg, l.st), vms: l.vms}
}

// templateBuildTimeout bounds one template's boot and save.
const templateBuildTimeout = 15 * time.Minute

// buildTemplate boots the image once, never for a job, up to the point
// where a task would log in, and saves it (see template.Store).
func (d *Driver) buildTemplate(store *template.Store, key template.Key, tb templateBuild) {
	log := d.log.With("template", key.ID(), "image", key.Image)
	b, err := store.Begin(key)
	if err != nil {
		return // another launch started it
	}
	ctx, cancel := context.WithTimeout(d.ctx, templateBuildTimeout)
	defer cancel()
	start := time.Now()
	hostKey, err := d.bootAndSave(ctx, b, key, tb)
	if err != nil {
		b.Abort()
		log.Error("template build failed; tasks keep booting cold", "error", err)
		return
	}
	if _, err := b.Commit(hostKey); err != nil {
		log.Error("template build failed; tasks keep booting cold", "error", err)
		return
	}
	log.Info("template saved", "took", time.Since(start).Round(time.Millisecond).String())
}

// bootAndSave runs the template VM and saves it into the build's files. It
// returns the guest's host key, which clones are first logged into with.
func (d *Driver) bootAndSave(ctx context.Context, b *template.Build, key template.Key, tb templateBuild) ([]byte, error) {
	spec, pin, loginKey, err := d.templateSpec(ctx, b, key, tb)
	if err != nil {
		return nil, err
	}
	qemuEnd, port, err := agentport.Pair()
	if err != nil {
		return nil, fmt.Errorf("template vm: %w", err)
	}
	// Its clones get a port of their own; this one is never written to.
	defer port.Close()
	spec.AgentPort = qemuEnd
	console, err := os.OpenFile(b.Path(template.ConsoleFile), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create template console log: %w", err)
	}
	defer console.Close()
	m, err := tb.vms.Start(ctx, spec, qemu.Output{Console: console, Log: b.Path("qemu.log")})
	qemuEnd.Close()
	if err != nil {
		return nil, fmt.Errorf("start template vm: %w", err)
	}
	defer os.Remove(spec.QMP)
	defer m.Kill()
	defer m.Close()
	g := tb.vms.Guest(func() (guestssh.Target, error) {
		return guestssh.Target{Addr: fmt.Sprintf("%s:%d", spec.SSHHost, spec.SSHPort), User: tb.img.User,
			PrivatePEM: loginKey, HostKey: pin}, nil
	})
	if err := g.WaitReady(ctx); err != nil {
		return nil, fmt.Errorf("template vm: no ssh login: %w", err)
	}
	if err := placeAgent(ctx, g, tb); err != nil {
		return nil, fmt.Errorf("template vm: %w", err)
	}
	if err := serveAgentPort(ctx, g, tb.img.User); err != nil {
		return nil, fmt.Errorf("template vm: %w", err)
	}
	// No session of the template's may live on in its clones.
	g.Close()
	// What the guest still does (sshd ending the session, the agent's
	// start, the rest of the boot) would be every clone's work right after
	// its restore, competing with its identity and job on one emulated
	// vCPU: the template is saved once that is done.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(templateQuiet):
	}
	saver, ok := m.(vm.Saver)
	if !ok {
		return nil, errors.New("this VM provider cannot save a VM")
	}
	if err := saver.SaveState(ctx, b.Path(template.StateFile)); err != nil {
		return nil, err
	}
	m.Kill()
	// The RAM file is written through QEMU's shared mapping; it must be on
	// disk before it is stamped and a clone maps it.
	if err := syncFile(b.Path(template.RAMFile)); err != nil {
		return nil, err
	}
	os.Remove(spec.Seed) // it held the template's host key; clones have their own seeds
	return pin, nil
}

// templateQuiet is how long a template's guest is left alone before it is
// saved.
const templateQuiet = 3 * time.Second

// placeAgent puts the agent where a job's would be, so clones skip the
// copy: the only thing a template holds besides a booted guest.
func placeAgent(ctx context.Context, g vm.Guest, tb templateBuild) error {
	c, err := g.SSH(ctx)
	if err != nil {
		return err
	}
	return jobrun.PlaceAgent(ctx, c, tb.agentDisk, tb.img.User == "root")
}

// serveAgentPort leaves the agent running as root on the agent port, which
// each clone's driver then talks to (see package agentport), with a job
// process for the login user waiting for a clone's job. It returns once
// the agent has the port open.
func serveAgentPort(ctx context.Context, g vm.Guest, user string) error {
	c, err := g.SSH(ctx)
	if err != nil {
		return err
	}
	cmd := contract.AgentCommand(contract.AgentServe, "--detach", "--user", guestssh.ShellQuote(user))
	// serve says why it failed on stderr, which the error carries (bounded
	// by Output); its stdout is empty.
	if _, err := c.Output(ctx, asRoot(cmd), nil); err != nil {
		return fmt.Errorf("start the agent on its port: %w", err)
	}
	return nil
}

// templateSpec makes the template's disk, keys, seed and RAM file and the
// QEMU spec that boots it: the task's machine with its RAM in a shared file.
func (d *Driver) templateSpec(ctx context.Context, b *template.Build, key template.Key, tb templateBuild) (qemu.Spec, []byte, []byte, error) {
	var spec qemu.Spec
	if err := tb.vms.CreateDisk(ctx, vm.Disk{Base: tb.base, BaseFormat: tb.img.Format, Path: b.Path(template.DiskFile), Size: key.DiskSize}); err != nil {
		return spec, nil, nil, fmt.Errorf("create template disk: %w", err)
	}
	if err := os.Chmod(b.Path(template.DiskFile), 0o600); err != nil {
		return spec, nil, nil, fmt.Errorf("restrict template disk: %w", err)
	}
	login, err := guestssh.NewKey("solstice-vm template " + key.ID())
	if err != nil {
		return spec, nil, nil, err
	}
	if err := os.WriteFile(b.Path(template.LoginKeyFile), login.PrivatePEM, 0o600); err != nil {
		return spec, nil, nil, fmt.Errorf("store template login key: %w", err)
	}
	const host = "solstice-template"
	hostKey, pin, err := newHostKey(host)
	if err != nil {
		return spec, nil, nil, err
	}
	seedPath := b.Path(tb.img.Seed().FileName())
	seed := seedFor(tb.img, "template-"+key.ID(), host, login.AuthorizedKey)
	seed.HostKey = hostKey
	if err := cloudinit.Write(seedPath, tb.img.Seed(), seed); err != nil {
		return spec, nil, nil, err
	}
	user, err := d.qemuUser(tb.spec.Accel)
	if err != nil {
		return spec, nil, nil, fmt.Errorf("template vm: %w", err)
	}
	if err := makeRAMFile(b.Path(template.RAMFile), key.MemoryMB, user); err != nil {
		return spec, nil, nil, err
	}
	port, err := qemu.FreePort("127.0.0.1")
	if err != nil {
		return spec, nil, nil, err
	}
	spec = tb.spec
	spec.Name = "tpl-" + key.ID()[:12]
	spec.Disk, spec.Base, spec.BaseFormat = b.Path(template.DiskFile), tb.base, tb.img.Format
	spec.Seed, spec.SeedDisk = seedPath, tb.img.Seed() == cloudinit.FormatFAT
	spec.AgentDisk = tb.agentDisk.Path
	spec.SSHHost, spec.SSHPort, spec.Netns = "127.0.0.1", port, ""
	spec.QMP = socketPath(d.runDir, "template-"+key.ID())
	spec.PIDFile = b.Path("qemu.pid")
	spec.User = user
	spec.RAM = &qemu.RAM{Path: b.Path(template.RAMFile), Shared: true}
	return spec, pin, login.PrivatePEM, os.MkdirAll(d.runDir, 0o700)
}

// makeRAMFile makes the template's (sparse) RAM file, owned by QEMU's user:
// QEMU 7.2 reopens it through /proc/self/fd (see qemu.RAM).
func makeRAMFile(path string, memMB int, user *qemu.User) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("create template ram file: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(int64(memMB) << 20); err != nil {
		return fmt.Errorf("size template ram file: %w", err)
	}
	if user != nil {
		if err := f.Chown(int(user.UID), int(user.GID)); err != nil {
			return fmt.Errorf("give the template ram file to qemu's user: %w", err)
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", path, err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", path, err)
	}
	return nil
}

// templateDir is where templates live: template_dir, or next to the image
// cache.
func (c *Config) templateDir() string {
	if c.TemplateDir != "" {
		return c.TemplateDir
	}
	return filepath.Join(c.CacheDir, "templates")
}

// warm tells whether the image may start from a template (warm = false in
// its catalog entry opts it out).
func (img *ImageConfig) warm() bool { return img.Warm }
