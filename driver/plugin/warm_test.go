package plugin

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestIdentityScript(t *testing.T) {
	id := identity{
		User: "solstice", AuthorizedKey: "ssh-ed25519 AAAA task-key",
		HostKeyPEM: "-----BEGIN OPENSSH PRIVATE KEY-----\nabc\n-----END OPENSSH PRIVATE KEY-----\n",
		HostKeyPub: "ssh-ed25519 BBBB host", Hostname: "job-1234abcd", InstanceID: "alloc'; rm -rf /",
	}
	a, err := identityScript(id)
	if err != nil {
		t.Fatal(err)
	}
	b, err := identityScript(id)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two clones got the same random seed and machine id")
	}
	for _, want := range []string{
		"'ssh-ed25519 AAAA task-key'", "'ssh-ed25519 BBBB host'", "'job-1234abcd' >/proc/sys/kernel/hostname",
		`'alloc'\''; rm -rf /'`, "date -u -s @", "kill -HUP",
	} {
		if !strings.Contains(a, want) {
			t.Errorf("script lacks %q:\n%s", want, a)
		}
	}
	// The random seed is a printf format of its own, which may hold
	// anything; Sprintf's error marks are looked for in the rest.
	var rest []string
	for _, l := range strings.Split(a, "\n") {
		if !strings.HasSuffix(l, ">/dev/urandom") {
			rest = append(rest, l)
		}
	}
	if strings.Contains(strings.Join(rest, "\n"), "%!") || len(rest) == len(strings.Split(a, "\n")) {
		t.Fatalf("script has a formatting error, or no random seed:\n%s", a)
	}
	cmd := exec.Command("sh", "-n")
	cmd.Stdin = strings.NewReader(a)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sh -n: %v: %s\n%s", err, out, a)
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

// TestReseedShell runs the clone's reseed on this (Linux) host: as root the
// kernel reseeds, as anyone else the refusal is reported, never ignored;
// and a guest with no program to make the ioctl is refused by name.
func TestReseedShell(t *testing.T) {
	out, err := exec.Command("sh", "-c", reseedShell).CombinedOutput()
	if os.Geteuid() == 0 {
		if err != nil {
			t.Fatalf("reseed as root: %v: %s", err, out)
		}
	} else if err == nil || !strings.Contains(string(out), "RNDRESEEDCRNG") {
		t.Fatalf("reseed without root = %v, %q; want a failure naming RNDRESEEDCRNG", err, out)
	}

	cmd := exec.Command("/bin/sh", "-c", reseedShell)
	cmd.Env = []string{"PATH=" + t.TempDir()}
	out, err = cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "neither perl nor python3") {
		t.Fatalf("reseed without perl or python3 = %v, %q; want a failure saying so", err, out)
	}
}
