// Package testimage holds the recipe of the solstice-test guest image (see
// README.md). This test checks the guest's NoCloud seed reader,
// rootfs/usr/lib/solstice-test/seed.awk, under every awk found on the host
// (the guest runs it with busybox awk; mawk and gawk are checked too).
package testimage

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/driver/cloudinit"
	"github.com/solstice-ci/solstice/driver/guestssh"
)

const seedAWK = "rootfs/usr/lib/solstice-test/seed.awk"

// awks returns the awk commands available here, each as argv.
func awks(t *testing.T) map[string][]string {
	found := map[string][]string{}
	for _, name := range []string{"mawk", "gawk", "original-awk"} {
		if p, err := exec.LookPath(name); err == nil {
			found[name] = []string{p}
		}
	}
	if p, err := exec.LookPath("busybox"); err == nil {
		if exec.Command(p, "awk", "BEGIN { exit 0 }").Run() == nil {
			found["busybox"] = []string{p, "awk"}
		}
	}
	// The image's seed reader runs under mawk, so that one is required.
	if found["mawk"] == nil {
		t.Fatal("mawk not found: the image runs the seed reader under mawk (apt-get install mawk)")
	}
	return found
}

func runSeed(t *testing.T, awk []string, what, input string) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), what)
	if err := os.WriteFile(f, []byte(input), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{}, awk[1:]...), "-v", "what="+what, "-f", seedAWK, f)
	out, err := exec.Command(awk[0], args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%v: %v\n%s", awk, err, out)
	}
	return string(out)
}

// rec joins fields with tabs, one record per argument line.
func rec(lines ...string) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.ReplaceAll(l, "|", "\t"))
		b.WriteByte('\n')
	}
	return b.String()
}

func TestSeedUserData(t *testing.T) {
	cases := []struct {
		name, in, want string
	}{{
		name: "driver output (yaml.v3, 4-space indent)",
		in: `#cloud-config
users:
    - name: solstice
      sudo: ALL=(ALL) NOPASSWD:ALL
      shell: /bin/bash
      ssh_authorized_keys:
        - ssh-ed25519 AAAAC3Nza test
`,
		want: rec(
			"user|solstice|/bin/bash|-",
			"sudo|solstice|ALL=(ALL) NOPASSWD:ALL",
			"key|solstice|ssh-ed25519 AAAAC3Nza test"),
	}, {
		name: "compact lists, quotes, comments, default user",
		in: `#cloud-config
# a comment
users:
- default
- name: "bob"   # trailing comment
  sudo: 'ALL=(ALL) NOPASSWD:ALL'
  groups: [adm, 'staff']
  lock_passwd: true
  ssh_authorized_keys:
  - ssh-ed25519 AAAA bob@host
  - "ssh-rsa BBBB it's \"quoted\""
- name: carol
  ssh-authorized-keys: ['ssh-ed25519 CCCC carol''s key', "ssh-ed25519 DDDD"]
  sudo: false
  write_files:
    - path: /x
      content: hi
ssh_authorized_keys:
  - ssh-ed25519 TOP top#not-a-comment
runcmd: [ls]
hostname: from-user-data
`,
		want: rec(
			"user|solstice|/bin/bash|-",
			"sudo|solstice|ALL=(ALL) NOPASSWD:ALL",
			"user|bob|-|-",
			"sudo|bob|ALL=(ALL) NOPASSWD:ALL",
			"group|bob|adm",
			"group|bob|staff",
			"key|bob|ssh-ed25519 AAAA bob@host",
			`key|bob|ssh-rsa BBBB it's "quoted"`,
			"user|carol|-|-",
			"key|carol|ssh-ed25519 CCCC carol's key",
			"key|carol|ssh-ed25519 DDDD",
			"warn|cloud-config key ignored: runcmd",
			"key|solstice|ssh-ed25519 TOP top#not-a-comment",
			"hostname|from-user-data"),
	}, {
		name: "bare dash items and sudo lists",
		in:   "#cloud-config\r\nusers:\r\n  -\r\n    name: dave\r\n    shell: /bin/sh\r\n    homedir: /srv/dave\r\n    sudo:\r\n      - \"ALL=(ALL) NOPASSWD: /bin/true\"\r\n      - ALL=(root) /bin/ls\r\n    ssh_authorized_keys:\r\n      - k1\r\n",
		want: rec(
			"user|dave|/bin/sh|/srv/dave",
			"sudo|dave|ALL=(ALL) NOPASSWD: /bin/true",
			"sudo|dave|ALL=(root) /bin/ls",
			"key|dave|k1"),
	}, {
		name: "no users key: the default user gets the top-level keys",
		in:   "#cloud-config\nssh_authorized_keys: [k1, \"k2\"]\nfqdn: a.example.com\n",
		want: rec(
			"user|solstice|/bin/bash|-",
			"sudo|solstice|ALL=(ALL) NOPASSWD:ALL",
			"key|solstice|k1",
			"key|solstice|k2",
			"hostname|a.example.com"),
	}, {
		name: "flow users without default: top-level keys ignored",
		in:   "#cloud-config\nusers: [eve]\nssh_authorized_keys:\n  - k1\n",
		want: rec(
			"user|eve|-|-",
			"warn|top-level ssh_authorized_keys ignored: users has no default entry"),
	}, {
		name: "an entry without a name",
		in:   "#cloud-config\nusers:\n  - shell: /bin/sh\n",
		want: rec("warn|a users entry has no name; ignored"),
	}, {
		name: "ssh_keys: ed25519 host key, others ignored",
		in: `#cloud-config
ssh_keys:
  rsa_private: |
    -----BEGIN RSA PRIVATE KEY-----
    MIIE # not a comment
    -----END RSA PRIVATE KEY-----
  ed25519_private: |-
      -----BEGIN OPENSSH PRIVATE KEY-----
      b3BlbnNzaC1rZXktdjEAAAAA#x

      AAAAC3NzaC1lZDI1NTE5AAAA
      -----END OPENSSH PRIVATE KEY-----
  ed25519_public: 'ssh-ed25519 AAAAHOST root@job-1'
  ed25519_certificate: ssh-ed25519-cert-v01@openssh.com AAAA
ssh_authorized_keys: [k1]
`,
		want: rec(
			"warn|ssh_keys: rsa_private ignored (only ed25519 host keys)",
			"hostkey|ed25519|private|-----BEGIN OPENSSH PRIVATE KEY-----",
			"hostkey|ed25519|private|b3BlbnNzaC1rZXktdjEAAAAA#x",
			"hostkey|ed25519|private|AAAAC3NzaC1lZDI1NTE5AAAA",
			"hostkey|ed25519|private|-----END OPENSSH PRIVATE KEY-----",
			"hostkey|ed25519|public|ssh-ed25519 AAAAHOST root@job-1",
			"warn|ssh_keys: ed25519_certificate ignored (only ed25519 host keys)",
			"user|solstice|/bin/bash|-",
			"sudo|solstice|ALL=(ALL) NOPASSWD:ALL",
			"key|solstice|k1"),
	}, {
		name: "ssh_keys: a private key must be a literal block",
		in:   "#cloud-config\nssh_keys:\n  ed25519_private: \"-----BEGIN\\n...\"\nssh_keys_extra: 1\nusers: []\n",
		want: rec(
			"warn|ssh_keys: ed25519_private must be a literal block scalar; ignored",
			"warn|cloud-config key ignored: ssh_keys_extra"),
	}}
	for awkName, awk := range awks(t) {
		for _, c := range cases {
			t.Run(awkName+"/"+c.name, func(t *testing.T) {
				if got := runSeed(t, awk, "user-data", c.in); got != c.want {
					t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
				}
			})
		}
	}
}

func TestSeedMetaData(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"yaml", "instance-id: i-1\nlocal-hostname: job-1\n", rec("instance-id|i-1", "hostname|job-1")},
		{"quoted", "instance-id: 'i-2'\nlocal-hostname: \"job-2\" # c\n", rec("instance-id|i-2", "hostname|job-2")},
		{"json", `{"instance-id": "i-3", "local-hostname": "job-3"}` + "\n", rec("instance-id|i-3", "hostname|job-3")},
		{"json multi-line", "{\n  \"instance-id\": \"i-4\",\n  \"hostname\": \"h4\"\n}\n", rec("instance-id|i-4", "hostname|h4")},
	}
	for awkName, awk := range awks(t) {
		for _, c := range cases {
			t.Run(awkName+"/"+c.name, func(t *testing.T) {
				if got := runSeed(t, awk, "meta-data", c.in); got != c.want {
					t.Errorf("got:\n%s\nwant:\n%s", got, c.want)
				}
			})
		}
	}
}

// TestSeedReadsTheDriversHostKey runs the driver's own seed rendering
// through the reader: the host key the driver pins must be the one the
// guest installs, byte for byte.
func TestSeedReadsTheDriversHostKey(t *testing.T) {
	login, err := guestssh.NewKey("login")
	if err != nil {
		t.Fatal(err)
	}
	host, err := guestssh.NewKey("root@job-1")
	if err != nil {
		t.Fatal(err)
	}
	data, err := cloudinit.Seed{
		InstanceID: "i-1", Hostname: "job-1",
		Users: []cloudinit.User{{
			Name: "solstice", Sudo: cloudinit.PasswordlessSudo, Shell: "/bin/sh",
			SSHAuthorizedKeys: []string{login.AuthorizedKey},
		}},
		HostKey: &cloudinit.HostKey{PrivatePEM: string(host.PrivatePEM), Public: host.AuthorizedKey},
	}.UserData()
	if err != nil {
		t.Fatal(err)
	}
	for awkName, awk := range awks(t) {
		t.Run(awkName, func(t *testing.T) {
			var private strings.Builder
			var public string
			for _, line := range strings.Split(strings.TrimSuffix(runSeed(t, awk, "user-data", string(data)), "\n"), "\n") {
				f := strings.SplitN(line, "\t", 4)
				switch {
				case f[0] == "warn":
					t.Errorf("reader warns: %s", line)
				case f[0] == "hostkey" && f[2] == "private":
					private.WriteString(f[3] + "\n")
				case f[0] == "hostkey" && f[2] == "public":
					public = f[3]
				}
			}
			if private.String() != string(host.PrivatePEM) {
				t.Errorf("private key read as\n%s\nwant\n%s", private.String(), host.PrivatePEM)
			}
			if public != host.AuthorizedKey {
				t.Errorf("public key read as %q, want %q", public, host.AuthorizedKey)
			}
		})
	}
}
