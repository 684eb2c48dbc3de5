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
	path := filepath.Join(t.TempDir(), "seed.iso")
	if err := WriteISO(path, testSeed()); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(isoinfo, "-d", "-i", path).CombinedOutput()
	if err != nil {
		t.Fatalf("isoinfo -d: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Volume id: cidata") {
		t.Fatalf("volume label is not cidata:\n%s", out)
	}
	want, err := testSeed().files()
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
