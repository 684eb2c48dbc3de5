package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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
		{"no users", func(s *Seed) { s.Users = nil }, "at least one user"},
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
