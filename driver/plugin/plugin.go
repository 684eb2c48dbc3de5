// Package plugin is the solstice-vm Nomad task driver: the gRPC-facing layer
// that turns Nomad's task lifecycle calls into VM operations. The VM work
// itself lives in the qemu, disk, cloudinit, image and guestssh packages;
// the per-task bookkeeping in the task package.
package plugin

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins/base"
	"github.com/hashicorp/nomad/plugins/drivers"
	"github.com/hashicorp/nomad/plugins/shared/hclspec"
	pstructs "github.com/hashicorp/nomad/plugins/shared/structs"
)

// Name is the driver name jobs use (`driver = "solstice-vm"`); it is also
// the plugin binary's file name, which Nomad requires the plugin block's
// label to match.
const Name = "solstice-vm"

// Version is reported in the fingerprint; set at build time.
var Version = "0.1.0-dev"

const fingerprintPeriod = 30 * time.Second

// Driver is the solstice-vm task driver.
type Driver struct {
	log    hclog.Logger
	ctx    context.Context
	cancel context.CancelFunc

	mu     sync.RWMutex
	config *Config
}

// New returns the driver; Nomad configures it through SetConfig.
func New(log hclog.Logger) *Driver {
	ctx, cancel := context.WithCancel(context.Background())
	return &Driver{log: log.Named(Name), ctx: ctx, cancel: cancel, config: DefaultConfig()}
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

// SetConfig receives the client's plugin block.
func (d *Driver) SetConfig(c *base.Config) error {
	cfg := DefaultConfig()
	if len(c.PluginConfig) > 0 {
		if err := base.MsgPackDecode(c.PluginConfig, cfg); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	d.mu.Lock()
	d.config = cfg
	d.mu.Unlock()
	return nil
}

func (d *Driver) cfg() *Config {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.config
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
				timer.Reset(fingerprintPeriod)
				select {
				case ch <- d.fingerprint(ctx):
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return ch, nil
}

func (d *Driver) fingerprint(ctx context.Context) *drivers.Fingerprint {
	return &drivers.Fingerprint{
		Health:            drivers.HealthStateHealthy,
		HealthDescription: drivers.DriverHealthy,
		Attributes: map[string]*pstructs.Attribute{
			"driver." + Name:              pstructs.NewBoolAttribute(true),
			"driver." + Name + ".version": pstructs.NewStringAttribute(Version),
		},
	}
}
