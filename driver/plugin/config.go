package plugin

import (
	"errors"
	"fmt"
	"maps"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/nomad/plugins/shared/hclspec"

	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/disk"
	"github.com/solstice-ci/solstice/driver/isolation"
	"github.com/solstice-ci/solstice/driver/qemuuser"
	"github.com/solstice-ci/solstice/driver/safehttp"
	"github.com/solstice-ci/solstice/internal/contract"
)

// configSpec is the client's plugin "solstice-vm" { config { … } } block.
var configSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"cache_dir": hclspec.NewDefault(hclspec.NewAttr("cache_dir", "string", false),
		hclspec.NewLiteral(`"/var/lib/solstice/images"`)),
	"accelerator": hclspec.NewDefault(hclspec.NewAttr("accelerator", "string", false),
		hclspec.NewLiteral(`"auto"`)),
	"qemu_binary": hclspec.NewDefault(hclspec.NewAttr("qemu_binary", "string", false),
		hclspec.NewLiteral(`"qemu-system-x86_64"`)),
	"qemu_img_binary": hclspec.NewDefault(hclspec.NewAttr("qemu_img_binary", "string", false),
		hclspec.NewLiteral(`"qemu-img"`)),
	"guest_agent_dir": hclspec.NewAttr("guest_agent_dir", "string", false),
	"qemu_user": hclspec.NewDefault(hclspec.NewAttr("qemu_user", "string", false),
		hclspec.NewLiteral(`"solstice-qemu"`)),
	"host_isolation": hclspec.NewDefault(hclspec.NewAttr("host_isolation", "bool", false),
		hclspec.NewLiteral(`true`)),
	"isolation_gid": hclspec.NewDefault(hclspec.NewAttr("isolation_gid", "number", false),
		hclspec.NewLiteral(`64999`)),
	"iptables_binary": hclspec.NewDefault(hclspec.NewAttr("iptables_binary", "string", false),
		hclspec.NewLiteral(`"iptables"`)),
	"ip6tables_binary": hclspec.NewDefault(hclspec.NewAttr("ip6tables_binary", "string", false),
		hclspec.NewLiteral(`"ip6tables"`)),
	"egress_allow": hclspec.NewDefault(hclspec.NewAttr("egress_allow", "list(string)", false),
		hclspec.NewLiteral(`[]`)),
	"bundle_hosts": hclspec.NewDefault(hclspec.NewAttr("bundle_hosts", "list(string)", false),
		hclspec.NewLiteral(`["127.0.0.1/bundle/", "[::1]/bundle/", "localhost/bundle/"]`)),
	"max_disk_size": hclspec.NewDefault(hclspec.NewAttr("max_disk_size", "string", false),
		hclspec.NewLiteral(`"100GiB"`)),
	"max_image_size": hclspec.NewDefault(hclspec.NewAttr("max_image_size", "string", false),
		hclspec.NewLiteral(`"100GiB"`)),
	"max_bundle_size": hclspec.NewDefault(hclspec.NewAttr("max_bundle_size", "string", false),
		hclspec.NewLiteral(`"4GiB"`)),
	"max_events_size": hclspec.NewDefault(hclspec.NewAttr("max_events_size", "string", false),
		hclspec.NewLiteral(`"1GiB"`)),
	"debug_ssh_host": hclspec.NewAttr("debug_ssh_host", "string", false),
	"debug_ssh_max": hclspec.NewDefault(hclspec.NewAttr("debug_ssh_max", "string", false),
		hclspec.NewLiteral(`"30m"`)),
	"warm_starts": hclspec.NewDefault(hclspec.NewAttr("warm_starts", "bool", false),
		hclspec.NewLiteral(`true`)),
	"template_dir": hclspec.NewAttr("template_dir", "string", false),
	"image": hclspec.NewBlockMap("image", []string{"label"}, hclspec.NewObject(map[string]*hclspec.Spec{
		"source":      hclspec.NewAttr("source", "string", true),
		"sha256":      hclspec.NewAttr("sha256", "string", false),
		"format":      hclspec.NewDefault(hclspec.NewAttr("format", "string", false), hclspec.NewLiteral(`"qcow2"`)),
		"compression": hclspec.NewDefault(hclspec.NewAttr("compression", "string", false), hclspec.NewLiteral(`"none"`)),
		"os":          hclspec.NewDefault(hclspec.NewAttr("os", "string", false), hclspec.NewLiteral(`"illumos"`)),
		"user":        hclspec.NewDefault(hclspec.NewAttr("user", "string", false), hclspec.NewLiteral(`"solstice"`)),
		"aliases":     hclspec.NewAttr("aliases", "list(string)", false),
		// Overrides of the OS's row in contract.GuestOSDefaults.
		"path_prepend":     hclspec.NewAttr("path_prepend", "list(string)", false),
		"default_shell":    hclspec.NewAttr("default_shell", "string", false),
		"work_root":        hclspec.NewAttr("work_root", "string", false),
		"poweroff_command": hclspec.NewAttr("poweroff_command", "string", false),
		// The NoCloud seed the image reads (cloudinit.Formats).
		"seed_format": hclspec.NewDefault(hclspec.NewAttr("seed_format", "string", false), hclspec.NewLiteral(`"nocloud"`)),
		// warm = false: this image's tasks always boot cold.
		"warm": hclspec.NewDefault(hclspec.NewAttr("warm", "bool", false), hclspec.NewLiteral(`true`)),
	})),
})

// Config is the decoded client plugin block.
type Config struct {
	CacheDir      string `codec:"cache_dir"`
	Accelerator   string `codec:"accelerator"`
	QemuBinary    string `codec:"qemu_binary"`
	QemuImgBinary string `codec:"qemu_img_binary"`
	GuestAgentDir string `codec:"guest_agent_dir"`
	// QEMUUser is the unprivileged account QEMU runs as: a user name
	// (created at SetConfig when missing) or "UID:GID" (see package
	// qemuuser). With host isolation its group is IsolationGID.
	QEMUUser string `codec:"qemu_user"`
	// HostIsolation enforces the guests' egress policy (package
	// isolation): QEMU runs as IsolationGID, and an iptables chain on that
	// group keeps guests to the public internet and EgressAllow, on the
	// host for host networking and in the allocation's namespace for
	// bridge networking.
	HostIsolation  bool   `codec:"host_isolation"`
	IsolationGID   int    `codec:"isolation_gid"`
	IPTablesBinary string `codec:"iptables_binary"`

	IP6TablesBinary string `codec:"ip6tables_binary"`
	// EgressAllow opens what guests may reach beyond the public internet
	// (entries as isolation.ParseAllow reads them): an internal forge, a
	// package mirror.
	EgressAllow []string `codec:"egress_allow"`
	// egressAllow is EgressAllow checked (see Validate).
	egressAllow []isolation.Allow

	// BundleHosts is where a task's http(s) bundle URL may point (entries
	// as safehttp.Hosts reads them). The default is solstice run's own
	// bundle server on this host's loopback, under /bundle/: the driver
	// fetches bundles host-side, so anything else a task names there would
	// be fetched with this host's reach.
	BundleHosts []string `codec:"bundle_hosts"`
	// MaxDiskSize caps a task's disk_size; MaxImageSize a catalog image,
	// downloaded and decompressed; MaxBundleSize a downloaded bundle.
	MaxDiskSize   string `codec:"max_disk_size"`
	MaxImageSize  string `codec:"max_image_size"`
	MaxBundleSize string `codec:"max_bundle_size"`
	// MaxEventsSize caps a job's events file: a guest writing without end
	// fails its job there instead of filling the client's disk.
	MaxEventsSize string                  `codec:"max_events_size"`
	Images        map[string]*ImageConfig `codec:"image"`
	// DebugSSHHost is the address users connect to for a failed job's
	// debug session (this client's public name, or a bastion's that
	// forwards to it); empty turns debug sessions off on this client.
	// DebugSSHMax bounds a session.
	DebugSSHHost string `codec:"debug_ssh_host"`
	DebugSSHMax  string `codec:"debug_ssh_max"`
	// WarmStarts lets tasks start as clones of a saved template VM (see
	// docs/warm-starts.md); TemplateDir is where templates are kept,
	// cache_dir/templates unless set.
	WarmStarts  bool   `codec:"warm_starts"`
	TemplateDir string `codec:"template_dir"`

	// limits holds the checked forms of the fields above (see Validate).
	limits limits

	// Broken holds catalog entries that failed validation, with the reason.
	// They are not offered to the scheduler, and a task naming one gets the
	// reason; the rest of the catalog stays usable.
	Broken map[string]error `codec:"-"`
}

// ImageConfig is one catalog entry: where a base image comes from and how
// to log into guests made from it.
type ImageConfig struct {
	Source      string   `codec:"source"`
	SHA256      string   `codec:"sha256"`
	Format      string   `codec:"format"`
	Compression string   `codec:"compression"`
	OS          string   `codec:"os"`
	User        string   `codec:"user"`
	Aliases     []string `codec:"aliases"`
	// PathPrepend, DefaultShell, WorkRoot and PowerOff override the OS's
	// defaults (contract.GuestOSDefaults) when set; see Guest.
	PathPrepend  []string `codec:"path_prepend"`
	DefaultShell string   `codec:"default_shell"`
	WorkRoot     string   `codec:"work_root"`
	PowerOff     string   `codec:"poweroff_command"`
	// SeedFormat is the seed volume the image reads: "nocloud" (ISO 9660,
	// users in cloud-config) or "nocloud-fat" (FAT, the key as meta-data
	// public-keys for the image's own user); see package cloudinit.
	SeedFormat string `codec:"seed_format"`
	// Warm lets the image's tasks start from a template (see WarmStarts).
	Warm bool `codec:"warm"`
}

// Seed is the image's seed format; an unset one (a config built in code)
// is nocloud, as the block's default.
func (img *ImageConfig) Seed() cloudinit.Format {
	if img.SeedFormat == "" {
		return cloudinit.FormatISO
	}
	return cloudinit.Format(img.SeedFormat)
}

// DefaultConfig is what an empty plugin block means.
func DefaultConfig() *Config {
	c := &Config{
		CacheDir:       "/var/lib/solstice/images",
		Accelerator:    "auto",
		QemuBinary:     "qemu-system-x86_64",
		QemuImgBinary:  "qemu-img",
		QEMUUser:       "solstice-qemu",
		HostIsolation:  true,
		IsolationGID:   64999,
		IPTablesBinary: "iptables",
		BundleHosts:    []string{"127.0.0.1/bundle/", "[::1]/bundle/", "localhost/bundle/"},
		MaxDiskSize:    "100GiB",
		MaxImageSize:   "100GiB",
		MaxBundleSize:  "4GiB",
		MaxEventsSize:  "1GiB",
		DebugSSHMax:    "30m",
		Images:         map[string]*ImageConfig{},
		WarmStarts:     true,

		IP6TablesBinary: "ip6tables",
		EgressAllow:     []string{},
	}
	c.parseLimits() // the defaults parse
	return c
}

// limits are the operator's bounds on what tasks may ask for and what the
// driver downloads, in checked form.
type limits struct {
	bundleHosts safehttp.Hosts
	maxDisk     int64
	maxImage    int64
	maxBundle   int64
	maxEvents   int64
	debugMax    time.Duration
}

// qemuAccount is the account QEMU runs as: qemu_user, in the isolation
// group when host isolation is on, since the firewall knows QEMU by it.
func (c *Config) qemuAccount() qemuuser.Want {
	w := qemuuser.Want{Name: c.QEMUUser}
	if c.HostIsolation {
		w.GID = c.IsolationGID
	}
	return w
}

// parseLimits checks the bounds, reporting every bad one.
func (c *Config) parseLimits() []error {
	var errs []error
	size := func(field, v string, dst *int64) {
		n, err := disk.ParseSize(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s = %q: %w", field, v, err))
		}
		*dst = n
	}
	size("max_disk_size", c.MaxDiskSize, &c.limits.maxDisk)
	size("max_image_size", c.MaxImageSize, &c.limits.maxImage)
	size("max_bundle_size", c.MaxBundleSize, &c.limits.maxBundle)
	size("max_events_size", c.MaxEventsSize, &c.limits.maxEvents)
	hosts, err := safehttp.ParseHosts(c.BundleHosts)
	if err != nil {
		errs = append(errs, fmt.Errorf("bundle_hosts: %w", err))
	}
	c.limits.bundleHosts = hosts
	d, err := defaultDebugMax, error(nil)
	if c.DebugSSHMax != "" { // a config built in code may leave it out
		d, err = time.ParseDuration(c.DebugSSHMax)
	}
	if err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("debug_ssh_max = %q: want a positive duration such as \"30m\"", c.DebugSSHMax))
	}
	c.limits.debugMax = d
	return errs
}

// defaultDebugMax is debug_ssh_max's default.
const defaultDebugMax = 30 * time.Minute

var (
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
	labelRe  = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9._-]*$`)
)

// Validate checks the whole block. Problems with the driver's own settings
// are fatal and reported all at once; a bad catalog entry only takes that
// image out of service (see Broken), so one typo cannot stop every job on
// the node.
func (c *Config) Validate() error {
	var errs []error
	switch c.Accelerator {
	case "auto", "kvm", "tcg":
	default:
		errs = append(errs, fmt.Errorf("accelerator = %q: must be auto, kvm or tcg", c.Accelerator))
	}
	if c.HostIsolation && (c.IsolationGID <= 0 || c.IsolationGID > 1<<31-2) {
		errs = append(errs, fmt.Errorf("isolation_gid = %d: must be a group id above 0", c.IsolationGID))
	}
	if c.CacheDir == "" {
		errs = append(errs, errors.New("cache_dir must not be empty"))
	}
	if err := qemuuser.Check(c.qemuAccount()); err != nil {
		errs = append(errs, err)
	}
	allow, err := isolation.ParseAllow(c.EgressAllow)
	if err != nil {
		errs = append(errs, fmt.Errorf("egress_allow: %w", err))
	}
	c.egressAllow = allow
	errs = append(errs, c.parseLimits()...)
	seen := map[string]string{}
	c.Broken = map[string]error{}
	for _, label := range slices.Sorted(maps.Keys(c.Images)) {
		img := c.Images[label]
		for _, name := range append([]string{label}, img.Aliases...) {
			if other, dup := seen[name]; dup {
				errs = append(errs, fmt.Errorf("image %q: name %q is already used by image %q", label, name, other))
			}
			seen[name] = label
		}
		if problems := img.validate(label); len(problems) > 0 {
			c.Broken[label] = errors.Join(problems...)
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("solstice-vm plugin config: %w", errors.Join(errs...))
	}
	return nil
}

func (img *ImageConfig) validate(label string) []error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("image %q: "+format, append([]any{label}, args...)...))
	}
	if !labelRe.MatchString(label) {
		bad("label must be letters, digits, '.', '_' or '-'")
	}
	for _, a := range img.Aliases {
		if !labelRe.MatchString(a) {
			bad("alias %q must be letters, digits, '.', '_' or '-'", a)
		}
	}
	u, err := url.Parse(img.Source)
	switch {
	case img.Source == "":
		bad("source is required")
	case err != nil:
		bad("source %q: %v", img.Source, err)
	case u.Scheme == "http" || u.Scheme == "https":
		if img.SHA256 == "" {
			bad("sha256 is required for an %s source", u.Scheme)
		}
	case u.Scheme == "file" || u.Scheme == "":
		if !strings.HasPrefix(u.Path, "/") {
			bad("source %q: a file source must be an absolute path", img.Source)
		}
	default:
		bad("source %q: scheme %q is not supported (use https, http or file)", img.Source, u.Scheme)
	}
	if img.SHA256 != "" && !sha256Re.MatchString(strings.ToLower(img.SHA256)) {
		bad("sha256 %q is not 64 hex digits", img.SHA256)
	}
	if img.Format != "qcow2" && img.Format != "raw" {
		bad("format %q: must be qcow2 or raw", img.Format)
	}
	switch img.Compression {
	case "none", "zstd", "xz", "gzip":
	default:
		bad("compression %q: must be none, zstd, xz or gzip", img.Compression)
	}
	if _, err := contract.DefaultsFor(img.OS); err != nil {
		bad("os %q: must be one of %s", img.OS, strings.Join(contract.GuestOSNames(), ", "))
	}
	errs = append(errs, img.validateGuest(label)...)
	if _, err := cloudinit.ParseFormat(string(img.Seed())); err != nil {
		bad("seed_format %q: must be one of %v", img.SeedFormat, cloudinit.Formats)
	}
	if img.User == "" {
		bad("user must not be empty")
	}
	return errs
}

// Resolve finds an image by label or alias.
func (c *Config) Resolve(name string) (label string, img *ImageConfig, ok bool) {
	if img, ok := c.Images[name]; ok {
		return name, img, true
	}
	for _, l := range slices.Sorted(maps.Keys(c.Images)) {
		for _, a := range c.Images[l].Aliases {
			if a == name {
				return l, c.Images[l], true
			}
		}
	}
	return "", nil, false
}

// Names lists every label and alias, for "unknown image" messages.
func (c *Config) Names() []string {
	var names []string
	for l, img := range c.Images {
		names = append(names, l)
		names = append(names, img.Aliases...)
	}
	sort.Strings(names)
	return names
}

// taskConfigSpec is a task's `config { … }` block.
var taskConfigSpec = hclspec.NewObject(map[string]*hclspec.Spec{
	"image":     hclspec.NewAttr("image", "string", true),
	"disk_size": hclspec.NewAttr("disk_size", "string", false),
	"boot_timeout": hclspec.NewDefault(hclspec.NewAttr("boot_timeout", "string", false),
		hclspec.NewLiteral(`"5m"`)),
	"ports":      hclspec.NewAttr("ports", "list(string)", false),
	"plan":       hclspec.NewAttr("plan", "string", false),
	"secrets":    hclspec.NewAttr("secrets", "string", false),
	"bundle":     hclspec.NewAttr("bundle", "string", false),
	"debug_port": hclspec.NewAttr("debug_port", "string", false),
	"action": hclspec.NewDefault(hclspec.NewAttr("action", "string", false),
		hclspec.NewLiteral(`"run"`)),
})

// TaskConfig is a decoded task config block.
type TaskConfig struct {
	Image       string   `codec:"image"`
	DiskSize    string   `codec:"disk_size"`
	BootTimeout string   `codec:"boot_timeout"`
	Ports       []string `codec:"ports"`
	// Plan is the job plan to run in the guest, relative to the task dir
	// (a dispatch payload lands in local/). Without one the task is a
	// long-running VM.
	Plan string `codec:"plan"`
	// Secrets is a JSON object of secret values relative to the task dir
	// (rendered by a template into secrets/); handed to the guest agent on
	// stdin, never written into the guest.
	Secrets string `codec:"secrets"`
	// Bundle is a git bundle of the repository (solstice run's checkout),
	// relative to the task dir; uploaded for the plan's checkout step.
	Bundle string `codec:"bundle"`
	// DebugPort is the group's network port a failed job's debug session
	// listens on (forwarded to the guest's sshd only while the session
	// lasts); without it a plan's debug request is refused.
	DebugPort string `codec:"debug_port"`
	// Action is what the task does: "run" boots a VM; "pull" and "verify"
	// only fetch or re-check the image in this client's cache (see
	// imageaction.go; solstice image pull and verify).
	Action string `codec:"action"`
}

// taskSettings is a TaskConfig checked and converted to usable values.
type taskSettings struct {
	DiskSize    int64
	BootTimeout time.Duration
}

// settings checks the task config against the client's config c.
func (tc *TaskConfig) settings(c *Config) (taskSettings, error) {
	var s taskSettings
	var errs []error
	if tc.DiskSize != "" {
		size, err := disk.ParseSize(tc.DiskSize)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("disk_size: %w", err))
		case size > c.limits.maxDisk:
			errs = append(errs, fmt.Errorf("disk_size = %q: refused: larger than this client allows (max_disk_size = %q in the plugin config)",
				tc.DiskSize, c.MaxDiskSize))
		}
		s.DiskSize = size
	}
	d, err := time.ParseDuration(tc.BootTimeout)
	if err != nil || d <= 0 {
		errs = append(errs, fmt.Errorf("boot_timeout = %q: want a positive duration such as \"5m\"", tc.BootTimeout))
	}
	s.BootTimeout = d
	if err := checkAction(tc.Action); err != nil {
		errs = append(errs, err)
	}
	if len(tc.Ports) > 1 {
		errs = append(errs, fmt.Errorf("ports = %v: only one port (the guest's ssh) can be forwarded", tc.Ports))
	}
	return s, errors.Join(errs...)
}
