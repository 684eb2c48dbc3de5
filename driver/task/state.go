// Package task holds the driver's per-task bookkeeping: the state Nomad
// persists for recovery, the live handle of a running VM, and the store of
// handles by task id.
package task

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/isolation"
	"github.com/solstice-ci/solstice/driver/qemu"
)

// StateVersion is bumped when State changes incompatibly.
const StateVersion = 1

// State is what the Nomad client stores for a task (msgpack) and hands back
// to RecoverTask after a plugin or client restart: enough to find the QEMU
// process again, talk to it, log into the guest and clean up after it.
type State struct {
	TaskConfig *drivers.TaskConfig `codec:"task_config"`
	Process    qemu.Process        `codec:"process"`
	Image      string              `codec:"image"`
	VMDir      string              `codec:"vm_dir"` // overlay, seed, qemu.log
	Overlay    string              `codec:"overlay"`
	Seed       string              `codec:"seed"`
	QMPSocket  string              `codec:"qmp_socket"`
	SSHHost    string              `codec:"ssh_host"`
	SSHPort    int                 `codec:"ssh_port"`
	User       string              `codec:"user"`
	KeyPath    string              `codec:"key_path"` // in the task's secrets dir
	HostKey    []byte              `codec:"host_key"` // the guest's, from its seed; every login insists on it
	Netns      string              `codec:"netns"`    // the alloc's, under bridge networking
	Events     string              `codec:"events"`   // host events.jsonl; empty for a plain VM
	PowerOff   string              `codec:"poweroff"` // the guest OS's power-off command; empty: ACPI only
	StartedAt  time.Time           `codec:"started_at"`
	BootTime   time.Duration       `codec:"boot_time"`
}

// SSHTarget says how to log into the task's guest with the given key.
func (s State) SSHTarget(key []byte) guestssh.Target {
	host := s.SSHHost
	if host == "0.0.0.0" { // forwarded on every address: any local one will do
		host = "127.0.0.1"
	}
	t := guestssh.Target{
		Addr:       fmt.Sprintf("%s:%d", host, s.SSHPort),
		User:       s.User,
		PrivatePEM: key,
		HostKey:    s.HostKey,
	}
	if s.Netns != "" {
		ns := s.Netns
		t.Dial = func(ctx context.Context, addr string) (net.Conn, error) {
			return isolation.DialInNetns(ctx, ns, addr)
		}
	}
	return t
}

// Login reads the task's key and says how to log into its guest. The key is
// read at each login because it lives only in the task's secrets dir, not
// in this process.
func (s State) Login() (guestssh.Target, error) {
	key, err := os.ReadFile(s.KeyPath)
	if err != nil {
		return guestssh.Target{}, fmt.Errorf("read task ssh key: %w", err)
	}
	return s.SSHTarget(key), nil
}
