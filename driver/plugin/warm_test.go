package plugin

import (
	"bytes"
	"testing"
	"time"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/cloudinit"
)

// TestCloneIdentity: two clones of one task config still differ in their
// random seed and machine id, and what the agent gets passes its checks.
func TestCloneIdentity(t *testing.T) {
	l := &launch{
		cfg: &drivers.TaskConfig{ID: "alloc/job/1234", Name: "job", AllocID: "d14692b8-78bf-67a8-13cf-f0871305a004"},
		img: &ImageConfig{User: "solstice"}, authorizedKey: "ssh-ed25519 AAAA task-key",
		hostKey: &cloudinit.HostKey{PrivatePEM: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n", Public: "ssh-ed25519 BBBB host"},
	}
	a, err := l.identity()
	if err != nil {
		t.Fatal(err)
	}
	b, err := l.identity()
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a.Seed, b.Seed) || a.MachineID == b.MachineID {
		t.Fatal("two clones got the same random seed or machine id")
	}
	if err := a.Validate(); err != nil {
		t.Fatalf("the agent would refuse the identity: %v", err)
	}
	if d := time.Since(time.Unix(0, a.UnixNano)); d < 0 || d > time.Minute {
		t.Errorf("the clock sent is %s off", d)
	}
}

func TestWarmSwitches(t *testing.T) {
	for _, tc := range []struct {
		name       string
		plugin     bool
		image      bool
		wantLookup bool
	}{
		{"both on", true, true, true},
		{"plugin off", false, true, false},
		{"image opted out", true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conf := DefaultConfig()
			conf.WarmStarts = tc.plugin
			l := &launch{conf: conf, img: &ImageConfig{OS: "linux", Warm: tc.image}, vms: &fakeVMs{}}
			reason, tpl := l.findTemplate()
			if tpl != nil || reason != "" {
				t.Fatalf("findTemplate with a fake provider = %q, %v; want a silent cold boot", reason, tpl)
			}
			if got := conf.WarmStarts && l.img.warm(); got != tc.wantLookup {
				t.Fatalf("warm starts on = %v, want %v", got, tc.wantLookup)
			}
		})
	}
}
