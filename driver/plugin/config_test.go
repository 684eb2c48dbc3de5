package plugin

import (
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/plugins/drivers"

	"github.com/solstice-ci/solstice/driver/disk"
)

func goodImage() *ImageConfig {
	return &ImageConfig{
		Source: "https://downloads.omnios.org/media/stable/omnios-r151056.cloud.qcow2",
		SHA256: strings.Repeat("ab", 32), Format: "qcow2", Compression: "none",
		OS: "illumos", User: "omnios", Aliases: []string{"omnios-stable"},
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name       string
		mutate     func(*Config)
		wantFatal  string // error from Validate
		wantBroken string // reason recorded for image "omnios"
	}{
		{"good", func(*Config) {}, "", ""},
		{"bad accelerator", func(c *Config) { c.Accelerator = "hvf" }, `accelerator = "hvf"`, ""},
		{"empty cache dir", func(c *Config) { c.CacheDir = "" }, "cache_dir", ""},
		{"qemu as root", func(c *Config) { c.QEMUUser = "root" }, `qemu_user = "root"`, ""},
		{"qemu as uid 0", func(c *Config) { c.QEMUUser = "0:64999" }, "must not run as root", ""},
		{"qemu outside the isolation group", func(c *Config) { c.QEMUUser = "5000:5001" }, "must be isolation_gid (64999)", ""},
		{"qemu numbers without isolation", func(c *Config) { c.QEMUUser, c.HostIsolation = "5000:5001", false }, "", ""},
		{"qemu user that reads as an option", func(c *Config) { c.QEMUUser = "-o" }, `qemu_user = "-o"`, ""},
		{"alias clash", func(c *Config) {
			other := goodImage()
			other.Aliases = []string{"omnios-stable"}
			c.Images["omnios2"] = other
		}, `name "omnios-stable" is already used`, ""},
		{"http without sha256", func(c *Config) { c.Images["omnios"].SHA256 = "" }, "", "sha256 is required for an https source"},
		{"short sha256", func(c *Config) { c.Images["omnios"].SHA256 = "abc" }, "", "not 64 hex digits"},
		{"relative file", func(c *Config) { c.Images["omnios"].Source = "images/x.qcow2" }, "", "absolute path"},
		{"ftp source", func(c *Config) { c.Images["omnios"].Source = "ftp://x/y" }, "", `scheme "ftp"`},
		{"bad format", func(c *Config) { c.Images["omnios"].Format = "vmdk" }, "", `format "vmdk"`},
		{"bad compression", func(c *Config) { c.Images["omnios"].Compression = "bz2" }, "", `compression "bz2"`},
		{"bad os", func(c *Config) { c.Images["omnios"].OS = "windows" }, "", `os "windows"`},
		{"freebsd", func(c *Config) { c.Images["omnios"].OS = "freebsd" }, "", ""},
		{"openbsd", func(c *Config) { c.Images["omnios"].OS = "openbsd" }, "", ""},
		{"netbsd", func(c *Config) { c.Images["omnios"].OS = "netbsd" }, "", ""},
		{"relative path_prepend", func(c *Config) { c.Images["omnios"].PathPrepend = []string{"gnu/bin"} }, "", `path_prepend: "gnu/bin" must be an absolute path`},
		{"bad default_shell", func(c *Config) { c.Images["omnios"].DefaultShell = "ksh -e" }, "", "shell: invalid shell option"},
		{"relative work_root", func(c *Config) { c.Images["omnios"].WorkRoot = "ci" }, "", `work_root: "ci"`},
		{"no user", func(c *Config) { c.Images["omnios"].User = "" }, "", "user must not be empty"},
		{"nocloud-fat seed", func(c *Config) { c.Images["omnios"].SeedFormat = "nocloud-fat" }, "", ""},
		{"bad seed_format", func(c *Config) { c.Images["omnios"].SeedFormat = "configdrive" }, "", `seed_format "configdrive"`},
		{"bad alias", func(c *Config) { c.Images["omnios"].Aliases = []string{"has space"} }, "", `alias "has space"`},
		{"bad max_disk_size", func(c *Config) { c.MaxDiskSize = "huge" }, `max_disk_size = "huge"`, ""},
		{"bad max_bundle_size", func(c *Config) { c.MaxBundleSize = "" }, `max_bundle_size = "": size is empty`, ""},
		{"egress_allow entries", func(c *Config) { c.EgressAllow = []string{"10.0.5.0/24:443", "192.168.1.10", "[fd00::/8]:8000-8100"} }, "", ""},
		{"bad CIDR in egress_allow", func(c *Config) { c.EgressAllow = []string{"10.0.5.0/24:443", "10.0.5.0/33"} },
			`egress_allow: entry 2 "10.0.5.0/33": not a CIDR`, ""},
		{"host bits in egress_allow", func(c *Config) { c.EgressAllow = []string{"10.0.5.7/24"} },
			`egress_allow: entry 1 "10.0.5.7/24": has bits set beyond /24 (did you mean 10.0.5.0/24?)`, ""},
		{"bad port in egress_allow", func(c *Config) { c.EgressAllow = []string{"10.0.5.0/24:https"} },
			`egress_allow: entry 1 "10.0.5.0/24:https": port "https": want a number from 1 to 65535`, ""},
		{"metadata in bundle_hosts", func(c *Config) { c.BundleHosts = []string{"169.254.169.254"} },
			`bundle_hosts: "169.254.169.254": never allowed: denied address: 169.254.169.254 is link-local`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Images["omnios"] = goodImage()
			tt.mutate(c)
			err := c.Validate()
			if tt.wantFatal == "" && err != nil {
				t.Fatalf("Validate() = %v", err)
			}
			if tt.wantFatal != "" && (err == nil || !strings.Contains(err.Error(), tt.wantFatal)) {
				t.Fatalf("Validate() = %v, want %q", err, tt.wantFatal)
			}
			broken := c.Broken["omnios"]
			switch {
			case tt.wantBroken == "" && broken != nil:
				t.Fatalf("image marked broken: %v", broken)
			case tt.wantBroken != "" && (broken == nil || !strings.Contains(broken.Error(), tt.wantBroken)):
				t.Fatalf("broken = %v, want %q", broken, tt.wantBroken)
			case tt.wantBroken != "" && !strings.Contains(broken.Error(), `image "omnios"`):
				t.Fatalf("reason %q does not name the image", broken)
			}
		})
	}
}

func TestResolve(t *testing.T) {
	c := DefaultConfig()
	c.Images["omnios"] = goodImage()
	for _, name := range []string{"omnios", "omnios-stable"} {
		if label, _, ok := c.Resolve(name); !ok || label != "omnios" {
			t.Errorf("Resolve(%q) = %q, %v", name, label, ok)
		}
	}
	if _, _, ok := c.Resolve("openindiana"); ok {
		t.Error("Resolve found an image that is not in the catalog")
	}
	if got := strings.Join(c.Names(), ","); got != "omnios,omnios-stable" {
		t.Errorf("Names() = %s", got)
	}
}

func TestTaskSettings(t *testing.T) {
	tests := []struct {
		name string
		tc   TaskConfig
		want string
	}{
		{"defaults", TaskConfig{Image: "x", BootTimeout: "5m"}, ""},
		{"disk size", TaskConfig{Image: "x", BootTimeout: "5m", DiskSize: "20GiB"}, ""},
		{"bad disk size", TaskConfig{Image: "x", BootTimeout: "5m", DiskSize: "lots"}, "disk_size"},
		{"disk size at the cap", TaskConfig{Image: "x", BootTimeout: "5m", DiskSize: "100GiB"}, ""},
		{"disk size over the cap", TaskConfig{Image: "x", BootTimeout: "5m", DiskSize: "101GiB"},
			`disk_size = "101GiB": refused: larger than this client allows (max_disk_size = "100GiB" in the plugin config)`},
		{"disk size beyond int64", TaskConfig{Image: "x", BootTimeout: "5m", DiskSize: "99999999999TiB"}, "too large"},
		{"bad boot timeout", TaskConfig{Image: "x", BootTimeout: "soon"}, `boot_timeout = "soon"`},
		{"negative boot timeout", TaskConfig{Image: "x", BootTimeout: "-1m"}, "boot_timeout"},
		{"two ports", TaskConfig{Image: "x", BootTimeout: "5m", Ports: []string{"a", "b"}}, "only one port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.tc.settings(DefaultConfig())
			if tt.want == "" && err != nil {
				t.Fatal(err)
			}
			if tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
				t.Fatalf("settings() = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHostnameAndShortID(t *testing.T) {
	cfg := &drivers.TaskConfig{Name: "Build_Job.1", AllocID: "0123456789abcdef"}
	if got := hostname(cfg); got != "build-job-1-01234567" {
		t.Errorf("hostname = %q", got)
	}
	a, b := shortID("alloc1/job/abc"), shortID("alloc2/job/abc")
	if len(a) != 12 || a == b {
		t.Errorf("shortID gave %q and %q", a, b)
	}
	if len(socketPath(defaultRunDir, strings.Repeat("x", 300))) >= 108 {
		t.Error("qmp socket path can exceed the unix socket limit")
	}
}

// TestConfigSpecDefaults checks the plugin block's default literals
// against DefaultConfig: the Nomad client fills an unset option from the
// literal, so one that drifted would change the driver's bounds silently.
// These literals are JSON as well as HCL.
func TestConfigSpecDefaults(t *testing.T) {
	want := DefaultConfig()
	for key, wantValue := range map[string]any{
		"bundle_hosts":     want.BundleHosts,
		"egress_allow":     want.EgressAllow,
		"ip6tables_binary": want.IP6TablesBinary,
		"iptables_binary":  want.IPTablesBinary,
		"isolation_gid":    want.IsolationGID,
		"host_isolation":   want.HostIsolation,
		"max_disk_size":    want.MaxDiskSize,
		"max_image_size":   want.MaxImageSize,
		"max_bundle_size":  want.MaxBundleSize,
		"max_events_size":  want.MaxEventsSize,
	} {
		lit := configSpec.GetObject().GetAttributes()[key].GetDefault().GetDefault().GetLiteral().GetValue()
		wantJSON, _ := json.Marshal(wantValue)
		var got, wantAny any
		if err := json.Unmarshal([]byte(lit), &got); err != nil {
			t.Errorf("%s: default literal %q: %v", key, lit, err)
			continue
		}
		json.Unmarshal(wantJSON, &wantAny)
		if !reflect.DeepEqual(got, wantAny) {
			t.Errorf("%s: HCL default %s, DefaultConfig %s", key, lit, wantJSON)
		}
	}
}

// TestImageVerifierRefusesBackingFile: an image naming a host file as its
// backing file never enters the cache, and the reason says why.
func TestImageVerifierRefusesBackingFile(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "backed.qcow2")
	out, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", "-b", "/etc/hostname", "-F", "raw", img, "1M").CombinedOutput()
	if err != nil {
		t.Fatalf("qemu-img create: %v\n%s", err, out)
	}
	err = imageVerifier(disk.Tool{})(context.Background(), img, "qcow2")
	want := "the image is not self-contained: it names a backing file (/etc/hostname), which QEMU would read from this host"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("verifier = %v, want %q", err, want)
	}
}

// TestConfigEgressAllowParsed: Validate keeps the checked allow-list for
// the policy, in the operator's order.
func TestConfigEgressAllowParsed(t *testing.T) {
	c := DefaultConfig()
	c.EgressAllow = []string{"10.0.5.0/24:443", "192.168.1.10", "[fd00::/8]:8000-8100"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, a := range c.egressAllow {
		got = append(got, a.String())
	}
	if want := []string{"10.0.5.0/24:443", "192.168.1.10/32", "[fd00::/8]:8000-8100"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("egressAllow = %v, want %v", got, want)
	}
}
