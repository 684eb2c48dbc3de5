package cloudinit

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"gopkg.in/yaml.v3"
)

func testSeed() Seed {
	return Seed{
		InstanceID: "i-123",
		Hostname:   "job-1",
		Users: []User{{
			Name:              "solstice",
			Sudo:              PasswordlessSudo,
			Shell:             "/bin/bash",
			SSHAuthorizedKeys: []string{"ssh-ed25519 AAAAC3Nza test"},
		}},
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Seed)
		want   string
	}{
		{"complete", func(*Seed) {}, ""},
		{"no instance id", func(s *Seed) { s.InstanceID = "" }, "instance-id"},
		{"no hostname", func(s *Seed) { s.Hostname = "" }, "local-hostname"},
		{"no users", func(s *Seed) { s.Users = nil }, "a user or a public key"},
		{"public keys instead of users", func(s *Seed) { s.Users, s.PublicKeys = nil, []string{"ssh-ed25519 AAAA k"} }, ""},
		{"two lines as one public key", func(s *Seed) { s.PublicKeys = []string{"ssh-ed25519 AAAA k\nssh-rsa B"} }, "public-keys[0]"},
		{"nameless user", func(s *Seed) { s.Users[0].Name = "" }, "users[0] has no name"},
		{"keyless user", func(s *Seed) { s.Users[0].SSHAuthorizedKeys = nil }, `user "solstice" has no ssh_authorized_keys`},
		{"host key", func(s *Seed) { s.HostKey = testHostKey() }, ""},
		{"host key without its private half", func(s *Seed) { s.HostKey = &HostKey{Public: testHostKey().Public} },
			"the host key needs an ed25519 private key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testSeed()
			tt.mutate(&s)
			err := s.Validate()
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Validate() = %v, want error containing %q", err, tt.want)
			}
		})
	}
}

func TestUserDataIsCloudConfig(t *testing.T) {
	data, err := testSeed().UserData()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(data), "#cloud-config\n") {
		t.Fatalf("user-data does not start with #cloud-config:\n%s", data)
	}
	var doc struct {
		Users []struct {
			Name string   `yaml:"name"`
			Sudo string   `yaml:"sudo"`
			Keys []string `yaml:"ssh_authorized_keys"`
		} `yaml:"users"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("user-data is not YAML: %v", err)
	}
	if len(doc.Users) != 1 || doc.Users[0].Name != "solstice" || doc.Users[0].Sudo != PasswordlessSudo ||
		len(doc.Users[0].Keys) != 1 {
		t.Fatalf("user-data users = %+v", doc.Users)
	}
}

// testHostKey is a made-up key pair: only its shape matters here.
func testHostKey() *HostKey {
	return &HostKey{
		PrivatePEM: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\nAAAAC3NzaC1lZDI1NTE5AAAA\n-----END OPENSSH PRIVATE KEY-----\n",
		Public:     "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHostKey host",
	}
}

// TestUserDataHostKey: the host key goes in as cloud-init's ssh_keys, the
// private key a literal block that reads back byte for byte.
func TestUserDataHostKey(t *testing.T) {
	s := testSeed()
	s.HostKey = testHostKey()
	data, err := s.UserData()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		SSHKeys map[string]string `yaml:"ssh_keys"`
	}
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatalf("user-data is not YAML: %v", err)
	}
	if doc.SSHKeys["ed25519_private"] != s.HostKey.PrivatePEM || doc.SSHKeys["ed25519_public"] != s.HostKey.Public {
		t.Fatalf("ssh_keys = %q", doc.SSHKeys)
	}
	if !strings.Contains(string(data), "ed25519_private: |\n") {
		t.Errorf("the private key is not a literal block (what the test image's reader takes):\n%s", data)
	}
	plain, _ := testSeed().UserData()
	if strings.Contains(string(plain), "ssh_keys") {
		t.Errorf("a seed without a host key has ssh_keys:\n%s", plain)
	}
}

func TestMetaData(t *testing.T) {
	data, err := testSeed().MetaData()
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]string
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc["instance-id"] != "i-123" || doc["local-hostname"] != "job-1" {
		t.Fatalf("meta-data = %v", doc)
	}
	if strings.Contains(string(data), "public-keys") {
		t.Errorf("meta-data without public keys names public-keys:\n%s", data)
	}
}

// TestFATSeedContent: a seed for a FAT image gives its key as meta-data
// public-keys and names no users, so the image's default user gets it.
func TestFATSeedContent(t *testing.T) {
	s := Seed{InstanceID: "i-1", Hostname: "job-1", PublicKeys: []string{"ssh-ed25519 AAAA k"}, HostKey: testHostKey()}
	meta, err := s.MetaData()
	if err != nil {
		t.Fatal(err)
	}
	var md struct {
		Keys []string `yaml:"public-keys"`
	}
	if err := yaml.Unmarshal(meta, &md); err != nil || len(md.Keys) != 1 || md.Keys[0] != "ssh-ed25519 AAAA k" {
		t.Fatalf("meta-data public-keys = %v (%v):\n%s", md.Keys, err, meta)
	}
	user, err := s.UserData()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(user), "users:") || !strings.Contains(string(user), "ssh_keys:") {
		t.Fatalf("user-data should carry the host key and no users:\n%s", user)
	}
}

func TestParseFormat(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want Format
		file string
	}{{"nocloud", FormatISO, "seed.iso"}, {"nocloud-fat", FormatFAT, "seed.img"}, {"iso", "", ""}, {"", "", ""}} {
		got, err := ParseFormat(tt.in)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("ParseFormat(%q) = %q, %v", tt.in, got, err)
		}
		if tt.want != "" && got.FileName() != tt.file {
			t.Errorf("%s.FileName() = %q, want %q", got, got.FileName(), tt.file)
		}
	}
}

// TestWriteFAT checks the volume with blkid (util-linux), an independent
// prober: it is how cloud-init finds the seed. The files are read back
// through go-diskfs; the e2e test has real cloud-init mount it.
func TestWriteFAT(t *testing.T) {
	blkid, err := exec.LookPath("blkid")
	if err != nil {
		t.Fatal("blkid not found: install Debian's util-linux")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.img")
	seed := Seed{InstanceID: "i-1", Hostname: "job-1", PublicKeys: []string{"ssh-ed25519 AAAA k"}, HostKey: testHostKey()}
	if err := Write(path, FormatFAT, seed); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("seed mode %v (%v), want 0600", st.Mode(), err)
	}
	out, err := exec.Command(blkid, "-p", "-o", "export", path).CombinedOutput()
	if err != nil {
		t.Fatalf("blkid: %v\n%s", err, out)
	}
	for _, want := range []string{"TYPE=vfat", "LABEL=cidata"} {
		if !strings.Contains(string(out), want+"\n") {
			t.Fatalf("blkid does not report %s:\n%s", want, out)
		}
	}
	d, err := diskfs.Open(path, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fs, err := d.GetFilesystem(0)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := seed.files()
	for name, data := range want {
		f, err := fs.OpenFile("/"+name, os.O_RDONLY)
		if err != nil {
			t.Fatalf("open %s: %v", name, err)
		}
		got, err := io.ReadAll(f)
		if err != nil || string(got) != string(data) {
			t.Fatalf("%s on the volume = %q (%v), want %q", name, got, err, data)
		}
	}
}

func TestWriteUnknownFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed")
	if err := Write(path, Format("floppy"), testSeed()); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Fatalf("Write with an unknown format = %v", err)
	}
}

// TestWriteISO reads the image back with isoinfo (genisoimage), an
// independent ISO 9660 reader, so a label or layout mistake cannot hide.
func TestWriteISO(t *testing.T) {
	isoinfo, err := exec.LookPath("isoinfo")
	if err != nil {
		t.Fatal("isoinfo not found: install Debian's genisoimage (make deps does)")
	}
	dir := t.TempDir()
	path := filepath.Join(dir, "seed.iso")
	seed := testSeed()
	seed.HostKey = testHostKey()
	if err := WriteISO(path, seed); err != nil {
		t.Fatal(err)
	}
	// The seed holds a private key: only its owner reads it, and nothing
	// of it is left staged beside it.
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("seed mode %v (%v), want 0600", st.Mode(), err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("WriteISO left %v beside the seed", entries)
	}
	out, err := exec.Command(isoinfo, "-d", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -d: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Volume id: cidata") {
		t.Fatalf("volume label is not cidata:\n%s", out)
	}
	want, err := seed.files()
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range want {
		got, err := exec.Command(isoinfo, "-R", "-i", path, "-x", "/"+name).Output()
		if err != nil {
			t.Fatalf("isoinfo -x %s: %v", name, err)
		}
		if string(got) != string(data) {
			t.Fatalf("%s in the ISO = %q, want %q", name, got, data)
		}
	}
}

func TestWriteISORefusesInvalidSeed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "seed.iso")
	s := testSeed()
	s.Users = nil
	if err := WriteISO(path, s); err == nil {
		t.Fatal("WriteISO accepted a seed without users")
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("an invalid seed left %s behind", path)
	}
}
