// Package plugin is the solstice-vm Nomad task driver: the gRPC-facing layer
// that turns Nomad's task lifecycle calls into VM operations. A task's
// image, disk, QEMU, guest login and job go through a vm.Provider (the
// qemu, disk, image, guestssh and jobrun packages behind it), so the task
// lifecycle is testable without a VM; only the accelerator probe boots its
// throwaway guest directly. The per-task bookkeeping lives in the task
// package.
package plugin

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/drivers/shared/eventer"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/solstice-ci/solstice/driver/accel"
	"github.com/solstice-ci/solstice/driver/disk"
	"github.com/solstice-ci/solstice/driver/image"
	"github.com/solstice-ci/solstice/driver/qemuuser"
	"github.com/solstice-ci/solstice/driver/safehttp"
	"github.com/solstice-ci/solstice/driver/task"
	"github.com/solstice-ci/solstice/driver/vm"
)

// Name is the driver name jobs use (`driver = "solstice-vm"`); it is also
// the plugin binary's file name, which Nomad requires the plugin block's
// label to match.
const Name = "solstice-vm"

// Version is reported in the fingerprint; set at build time.
var Version = "0.1.0-dev"

// Driver is the solstice-vm task driver.
type Driver struct {
	log     hclog.Logger
	ctx     context.Context
	cancel  context.CancelFunc
	eventer *eventer.Eventer
	tasks   *task.Store
	// runDir holds the QMP sockets (see socketPath).
	runDir string

	mu     sync.RWMutex
	config *Config
	images *image.Cache
	vms    vm.Provider
	accel  accelState
	// qemu is the account QEMU runs as; qemuErr says why there is none,
	// and the driver is unhealthy while it is set (see confine.go).
	qemu    qemuuser.Account
	qemuErr error
	// egress keeps the guests' egress policy installed and checked.
	egress egressGuard
	// warm holds the templates of warm starts.
	warm warmStarts
	// fingerprintNow asks for a fingerprint before the next period (an
	// image entered the cache: solstice image list should say so).
	fingerprintNow chan struct{}
}

var (
	_ drivers.DriverPlugin            = (*Driver)(nil)
	_ drivers.ExecTaskStreamingDriver = (*Driver)(nil)
)

// New returns the driver; Nomad configures it through SetConfig.
func New(log hclog.Logger) *Driver {
	ctx, cancel := context.WithCancel(context.Background())
	log = log.Named(Name)
	return &Driver{
		log:     log,
		ctx:     ctx,
		cancel:  cancel,
		eventer: eventer.NewEventer(ctx, log),
		tasks:   task.NewStore(),
		runDir:  defaultRunDir,
		config:  DefaultConfig(),
		accel:   accelState{result: accel.Result{Name: accel.TCG, Reason: "probe not run yet"}},

		fingerprintNow: make(chan struct{}, 1),
	}
}

// PluginInfo describes the plugin to Nomad.
func (d *Driver) PluginInfo() (*base.PluginInfoResponse, error) {
	return &base.PluginInfoResponse{
		Type:              base.PluginTypeDriver,
		PluginApiVersions: []string{drivers.ApiVersion010},
		PluginVersion:     Version,
		Name:              Name,
	}, nil
}

// ConfigSchema is the schema of the client's plugin "solstice-vm" block.
func (d *Driver) ConfigSchema() (*hclspec.Spec, error) { return configSpec, nil }

// SetConfig receives the client's plugin block and starts the accelerator
// probe.
func (d *Driver) SetConfig(c *base.Config) error {
	cfg := DefaultConfig()
	if len(c.PluginConfig) > 0 {
		if err := base.MsgPackDecode(c.PluginConfig, cfg); err != nil {
			return fmt.Errorf("decode solstice-vm plugin config: %w", err)
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	for _, label := range slices.Sorted(maps.Keys(cfg.Broken)) {
		d.log.Error("catalog image is misconfigured and will not be offered", "image", label, "error", cfg.Broken[label])
	}
	disks := disk.Tool{Binary: cfg.QemuImgBinary}
	images := &image.Cache{
		Dir: filepath.Join(cfg.CacheDir, "bases"),
		Log: d.log.Named("image"),
		// Catalog URLs are the operator's own, so an environment proxy
		// is honoured for them (unlike for a task's bundle).
		HTTP:     safehttp.NewClient(safehttp.Options{UseProxy: true}),
		MaxBytes: cfg.limits.maxImage,
		Verify:   imageVerifier(disks),
		Expand:   imageExpander(disks, cfg.limits.maxImage),
	}
	d.configure(cfg, images, &vm.Host{Images: images, Disks: disks, Log: d.log.Named("vm")})
	ctx, cancel := context.WithTimeout(d.ctx, egressTimeout)
	defer cancel()
	d.egress.configure(ctx, d.log, cfg)
	d.setUpQEMUUser(cfg)
	go d.probeAccelerator()
	return nil
}

// configure installs a checked config with the image cache and the VM
// provider that serve it; tests pass a fake provider here.
func (d *Driver) configure(cfg *Config, images *image.Cache, vms vm.Provider) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.config = cfg
	d.images = images
	d.vms = vms
}

// imageVerifier accepts an image into the cache only when qemu-img can
// read it, it names no other file (see disk.Info.SelfContained) and, for
// qcow2, its consistency check passes. The header is read first: qemu-img
// check would open a backing file.
func imageVerifier(disks disk.Tool) image.Verifier {
	return func(ctx context.Context, path, format string) error {
		info, err := disks.Inspect(ctx, path, format)
		if err != nil {
			return err
		}
		if err := info.SelfContained(); err != nil {
			return err
		}
		return disks.Check(ctx, path, format)
	}
}

// imageExpander expands a qcow2 image with compressed clusters into an
// uncompressed boot copy, unless that copy would be larger than max bytes
// (the plugin's max_image_size, when set): a small image of compressed
// zeros can stand for a huge disk.
func imageExpander(disks disk.Tool, max int64) image.Expander {
	return func(ctx context.Context, src, dst, format string) (bool, error) {
		if format != "qcow2" {
			return false, nil
		}
		n, err := disks.CompressedClusters(ctx, src)
		if err != nil || n == 0 {
			return false, err
		}
		size, err := disks.ExpandedSize(ctx, src)
		if err != nil {
			return false, err
		}
		if max > 0 && size > max {
			return false, fmt.Errorf("its uncompressed copy would take %d bytes, more than max_image_size (%d)", size, max)
		}
		return true, disks.Expand(ctx, src, dst)
	}
}

func (d *Driver) cfg() *Config {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.config
}

func (d *Driver) cache() *image.Cache {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.images
}

// provider is the VM provider of the current config.
func (d *Driver) provider() vm.Provider {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.vms
}

// Capabilities tells Nomad what the driver supports.
func (d *Driver) Capabilities() (*drivers.Capabilities, error) {
	return &drivers.Capabilities{
		SendSignals: false,
		Exec:        true,
		FSIsolation: drivers.FSIsolationImage,
		NetIsolationModes: []drivers.NetIsolationMode{
			drivers.NetIsolationModeHost,
			drivers.NetIsolationModeGroup,
		},
		MountConfigs: drivers.MountConfigSupportNone,
	}, nil
}

// TaskConfigSchema is the schema of a task's config block.
func (d *Driver) TaskConfigSchema() (*hclspec.Spec, error) { return taskConfigSpec, nil }

// Shutdown is called by tests; Nomad kills the plugin process instead.
func (d *Driver) Shutdown() { d.cancel() }
