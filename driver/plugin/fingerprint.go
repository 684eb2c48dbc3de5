package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"

	"github.com/solstice-ci/solstice/driver/accel"
	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/image"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/vm"
)

const fingerprintPeriod = 30 * time.Second

// accelState is the accelerator verdict and whether it may still change.
type accelState struct {
	result     accel.Result
	err        error // set when the configured accelerator cannot work
	unverified bool  // KVM looked usable but no image was there to test-boot
	probing    bool
}

func (d *Driver) accelerator() accel.Result {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.accel.result
}

// probeAccelerator decides between KVM and TCG once per configuration (and
// again after the first image arrives, if KVM was unverified until then).
func (d *Driver) probeAccelerator() {
	d.mu.Lock()
	if d.accel.probing {
		d.mu.Unlock()
		return
	}
	d.accel.probing = true
	cfg := d.config
	d.mu.Unlock()

	if res, ok := d.loadVerdict(cfg); ok {
		d.mu.Lock()
		d.accel = accelState{result: res}
		d.mu.Unlock()
		d.log.Info("accelerator chosen", "accelerator", res.Name, "reason", res.Reason, "probed", "earlier this boot")
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 3*time.Minute)
	defer cancel()
	res, err := d.probeOnce(ctx, cfg)
	if errors.Is(err, accel.ErrUnverified) && d.testBoot() != nil {
		// An image arrived while the probe ran: the decisive step can run now.
		res, err = d.probeOnce(ctx, cfg)
	}
	d.mu.Lock()
	d.accel = accelState{result: res, unverified: errors.Is(err, accel.ErrUnverified)}
	if err != nil && !d.accel.unverified {
		d.accel.err = err
	}
	d.mu.Unlock()
	if err != nil && !errors.Is(err, accel.ErrUnverified) {
		d.log.Error("accelerator probe failed", "error", err)
		return
	}
	if err == nil {
		d.saveVerdict(cfg, res)
	}
	d.log.Info("accelerator chosen", "accelerator", res.Name, "reason", res.Reason)
}

// A verdict holds for one boot of the host with one QEMU: probing boots a
// guest, which is worth doing once, not at every plugin start.
type verdict struct {
	Key    string       `json:"key"`
	Result accel.Result `json:"result"`
}

func verdictKey(cfg *Config) string {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	out, _ := exec.Command(cfg.QemuBinary, "--version").Output()
	return fmt.Sprintf("%s|%s|%s", strings.TrimSpace(string(boot)), strings.TrimSpace(string(out)), cfg.Accelerator)
}

func verdictPath(cfg *Config) string { return filepath.Join(cfg.CacheDir, "accelerator.json") }

func (d *Driver) loadVerdict(cfg *Config) (accel.Result, bool) {
	data, err := os.ReadFile(verdictPath(cfg))
	if err != nil {
		return accel.Result{}, false
	}
	var v verdict
	if json.Unmarshal(data, &v) != nil || v.Key != verdictKey(cfg) {
		return accel.Result{}, false
	}
	return v.Result, true
}

func (d *Driver) saveVerdict(cfg *Config, res accel.Result) {
	data, _ := json.Marshal(verdict{Key: verdictKey(cfg), Result: res})
	if err := os.MkdirAll(cfg.CacheDir, 0o755); err == nil {
		err = os.WriteFile(verdictPath(cfg), data, 0o644)
		if err != nil {
			d.log.Warn("cannot remember the accelerator verdict", "error", err)
		}
	}
}

// probeOnce runs the probe; its guests run as task guests do, so a qemu
// user that cannot open /dev/kvm shows as KVM not working.
func (d *Driver) probeOnce(ctx context.Context, cfg *Config) (accel.Result, error) {
	user, err := d.qemuUser(accel.KVM)
	if err != nil && cfg.Accelerator != accel.TCG { // tcg starts no probe guest
		return accel.Result{Name: accel.TCG, Reason: err.Error()}, err
	}
	return accel.Probe(ctx, accel.Options{
		Mode:       cfg.Accelerator,
		QemuBinary: cfg.QemuBinary,
		Device:     "/dev/kvm",
		WorkDir:    os.TempDir(),
		User:       user,
		Boot:       d.testBoot(),
	})
}

// reprobeIfUnverified runs the probe again once an image is cached.
func (d *Driver) reprobeIfUnverified() {
	d.mu.RLock()
	again := d.accel.unverified && !d.accel.probing
	d.mu.RUnlock()
	if again {
		go d.probeAccelerator()
	}
}

// refingerprint asks for a fingerprint now, without waiting for the
// period; a request while one is pending is the same request.
func (d *Driver) refingerprint() {
	select {
	case d.fingerprintNow <- struct{}{}:
	default:
	}
}

// testBoot returns a boot test over the first catalog image already on this
// client, or nil when there is none yet.
func (d *Driver) testBoot() accel.TestBoot {
	cfg, cache := d.cfg(), d.cache()
	for _, label := range slices.Sorted(maps.Keys(cfg.Images)) {
		img := cfg.Images[label]
		if cfg.Broken[label] != nil {
			continue
		}
		src := imageSource(label, img)
		if path, ok := cache.Cached(src); ok {
			return func(ctx context.Context, name string) error {
				return d.bootOnce(ctx, name, path, img)
			}
		}
	}
	return nil
}

func imageSource(label string, img *ImageConfig) image.Source {
	return image.Source{Label: label, URL: img.Source, SHA256: img.SHA256, Format: img.Format, Compression: img.Compression}
}

// bootOnce boots a throwaway guest of the image under accelerator name and
// logs into it, within a minute.
func (d *Driver) bootOnce(ctx context.Context, name, base string, img *ImageConfig) error {
	dir, err := os.MkdirTemp("", "solstice-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	overlay, seed := filepath.Join(dir, "disk.qcow2"), filepath.Join(dir, img.Seed().FileName())
	if err := d.provider().CreateDisk(ctx, vm.Disk{Base: base, BaseFormat: img.Format, Path: overlay}); err != nil {
		return err
	}
	login, err := probeSeed(seed, img)
	if err != nil {
		return err
	}
	port, err := qemu.FreePort("127.0.0.1")
	if err != nil {
		return err
	}
	user, err := d.qemuUser(name)
	if err != nil {
		return err
	}
	devnull, _ := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	defer devnull.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	inst, q, err := qemu.Start(ctx, qemu.Spec{
		Binary: d.cfg().QemuBinary, Name: "probe", Accel: name, MemoryMB: 512, CPUs: 1, User: user, Ephemeral: true,
		Disk: overlay, Base: base, BaseFormat: img.Format, Seed: seed, SeedDisk: img.Seed() == cloudinit.FormatFAT,
		SSHHost: "127.0.0.1", SSHPort: port,
		QMP: filepath.Join(dir, "qmp.sock"), PIDFile: filepath.Join(dir, "qemu.pid"),
	}, qemu.Output{Console: devnull, Log: filepath.Join(dir, "qemu.log")})
	if err != nil {
		return err
	}
	defer inst.Kill()
	defer q.Close()
	login.Addr = fmt.Sprintf("127.0.0.1:%d", port)
	c, err := guestssh.WaitReady(ctx, login, time.Second)
	if err != nil {
		return fmt.Errorf("a guest of its catalog image made no ssh login within a minute: %w", err)
	}
	c.Close()
	return nil
}

// probeSeed writes the probe guest's seed, with a login key and a host key
// of its own, and returns how to log in (all but the address).
func probeSeed(path string, img *ImageConfig) (guestssh.Target, error) {
	key, err := guestssh.NewKey("solstice-vm probe")
	if err != nil {
		return guestssh.Target{}, err
	}
	hostKey, pin, err := newHostKey("solstice-probe")
	if err != nil {
		return guestssh.Target{}, err
	}
	seed := seedFor(img, "probe", "solstice-probe", key.AuthorizedKey)
	seed.HostKey = hostKey
	if err := cloudinit.Write(path, img.Seed(), seed); err != nil {
		return guestssh.Target{}, err
	}
	return guestssh.Target{User: img.User, PrivatePEM: key.PrivatePEM, HostKey: pin}, nil
}

// Fingerprint reports health and node attributes now and then periodically.
func (d *Driver) Fingerprint(ctx context.Context) (<-chan *drivers.Fingerprint, error) {
	ch := make(chan *drivers.Fingerprint)
	go func() {
		defer close(ch)
		timer := time.NewTimer(0)
		defer timer.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-d.ctx.Done():
				return
			case <-timer.C:
			case <-d.fingerprintNow:
			}
			timer.Reset(fingerprintPeriod)
			select {
			case ch <- d.fingerprint(ctx):
			case <-ctx.Done():
				return
			}
		}
	}()
	return ch, nil
}

var qemuVersionRe = regexp.MustCompile(`version (\d+\.\d+(\.\d+)?)`)

func (d *Driver) fingerprint(ctx context.Context) *drivers.Fingerprint {
	cfg := d.cfg()
	fp := &drivers.Fingerprint{Attributes: map[string]*pstructs.Attribute{}}
	// First, so that rules are repaired even while QEMU is broken.
	egressErr := d.egress.check(ctx)
	vctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(vctx, cfg.QemuBinary, "--version").Output()
	if err != nil {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = fmt.Sprintf("%s does not run: %v", cfg.QemuBinary, err)
		return fp
	}
	m := qemuVersionRe.FindSubmatch(out)
	if m == nil {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = fmt.Sprintf("cannot read the version of %s from %q", cfg.QemuBinary, out)
		return fp
	}
	d.mu.RLock()
	acc := d.accel
	d.mu.RUnlock()
	if egressErr != nil {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = egressErr.Error()
		return fp
	}
	if err := d.qemuHealth(); err != nil {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = err.Error()
		return fp
	}
	if acc.err != nil {
		fp.Health = drivers.HealthStateUnhealthy
		fp.HealthDescription = acc.err.Error()
		return fp
	}
	fp.Health, fp.HealthDescription = drivers.HealthStateHealthy, drivers.DriverHealthy
	set := func(k string, v *pstructs.Attribute) { fp.Attributes["driver."+Name+k] = v }
	set("", pstructs.NewBoolAttribute(true))
	set(".version", pstructs.NewStringAttribute(Version))
	set(".qemu_version", pstructs.NewStringAttribute(string(m[1])))
	set(".accelerator", pstructs.NewStringAttribute(acc.result.Name))
	set(".accelerator_reason", pstructs.NewStringAttribute(acc.result.Reason))
	for label, img := range cfg.Images {
		if cfg.Broken[label] != nil {
			continue
		}
		set(".image."+label, pstructs.NewBoolAttribute(true))
		for _, alias := range img.Aliases {
			set(".image."+alias, pstructs.NewBoolAttribute(true))
			set(".image."+alias+".alias_of", pstructs.NewStringAttribute(label))
		}
		for k, v := range d.imageState(label, img) {
			set(".image."+label+"."+k, v)
		}
	}
	return fp
}

// imageState is what `solstice image list` shows of a catalog image on
// this client: its checksum, whether it is in the cache (so a task starts
// without a download) and the cached base's size. Only an image with a
// sha256 is looked up: without one the cache key is the file's hash, too
// costly to compute at every fingerprint.
func (d *Driver) imageState(label string, img *ImageConfig) map[string]*pstructs.Attribute {
	if img.SHA256 == "" {
		return nil
	}
	attrs := map[string]*pstructs.Attribute{
		"sha256": pstructs.NewStringAttribute(strings.ToLower(img.SHA256)),
		"cached": pstructs.NewBoolAttribute(false),
	}
	src := imageSource(label, img)
	if _, ok := d.cache().Cached(src); ok {
		attrs["cached"] = pstructs.NewBoolAttribute(true)
		// The image as fetched, not its boot copy.
		if st, err := os.Stat(d.cache().ImagePath(src)); err == nil {
			attrs["size"] = pstructs.NewIntAttribute(st.Size(), "")
		}
	}
	return attrs
}
