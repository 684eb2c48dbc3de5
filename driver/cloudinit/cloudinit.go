// Package cloudinit writes the NoCloud seed a Solstice guest reads on first
// boot: an ISO 9660 volume labelled "cidata" holding meta-data and a
// #cloud-config user-data, the way cloud-init's NoCloud datasource expects.
package cloudinit

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/diskfs/go-diskfs/disk"
	"github.com/diskfs/go-diskfs/filesystem"
	"github.com/diskfs/go-diskfs/filesystem/iso9660"
	"gopkg.in/yaml.v3"
)

// VolumeLabel is the label cloud-init's NoCloud datasource looks for.
const VolumeLabel = "cidata"

// A seed is a few KiB of text; the ISO needs room for its own metadata too.
const isoSize = 1 << 20

// User is one entry of the cloud-config "users" list.
type User struct {
	Name              string   `yaml:"name"`
	Sudo              string   `yaml:"sudo,omitempty"`
	Shell             string   `yaml:"shell,omitempty"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys"`
}

// Seed is what one guest learns about itself at boot.
type Seed struct {
	InstanceID string
	Hostname   string
	Users      []User
	// HostKey, when set, is the guest's SSH host key (cloud-config
	// ssh_keys), so whoever made the seed knows the key before the first
	// login instead of trusting whatever answers then.
	HostKey *HostKey
}

// HostKey is an ed25519 host key pair as cloud-config's ssh_keys carries
// it. The private half makes the seed a secret: keep it only where the
// task's own files live.
type HostKey struct {
	PrivatePEM string `yaml:"ed25519_private"` // OpenSSH format
	Public     string `yaml:"ed25519_public"`  // "ssh-ed25519 AAAA…"
}

// PasswordlessSudo is the sudo rule cloud images give their default user.
const PasswordlessSudo = "ALL=(ALL) NOPASSWD:ALL"

// Validate reports the first field that would make a guest unreachable.
func (s Seed) Validate() error {
	switch {
	case s.InstanceID == "":
		return errors.New("cloudinit: seed needs an instance-id")
	case s.Hostname == "":
		return errors.New("cloudinit: seed needs a local-hostname")
	case len(s.Users) == 0:
		return errors.New("cloudinit: seed needs at least one user")
	}
	for i, u := range s.Users {
		if u.Name == "" {
			return fmt.Errorf("cloudinit: users[%d] has no name", i)
		}
		if len(u.SSHAuthorizedKeys) == 0 {
			return fmt.Errorf("cloudinit: user %q has no ssh_authorized_keys", u.Name)
		}
	}
	if k := s.HostKey; k != nil && (!strings.HasPrefix(k.PrivatePEM, "-----BEGIN ") || !strings.HasPrefix(k.Public, "ssh-ed25519 ")) {
		return errors.New("cloudinit: the host key needs an ed25519 private key in PEM and its public key")
	}
	return nil
}

// MetaData renders the NoCloud meta-data file.
func (s Seed) MetaData() ([]byte, error) {
	return yaml.Marshal(map[string]string{
		"instance-id":    s.InstanceID,
		"local-hostname": s.Hostname,
	})
}

// UserData renders the #cloud-config user-data file.
func (s Seed) UserData() ([]byte, error) {
	body, err := yaml.Marshal(struct {
		Users   []User   `yaml:"users"`
		SSHKeys *HostKey `yaml:"ssh_keys,omitempty"`
	}{s.Users, s.HostKey})
	if err != nil {
		return nil, err
	}
	return append([]byte("#cloud-config\n"), body...), nil
}

// WriteISO writes the seed as a cidata ISO at path, replacing any file
// there. The ISO is readable by its owner only, and its files are staged
// next to it, not in the host's shared temporary directory: a seed may
// carry a host key.
func WriteISO(path string, s Seed) error {
	if err := s.Validate(); err != nil {
		return err
	}
	files, err := s.files()
	if err != nil {
		return err
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("cloudinit: replace %s: %w", path, err)
	}
	if err := writeISO(path, files); err != nil {
		os.Remove(path)
		return fmt.Errorf("cloudinit: write seed %s: %w", path, err)
	}
	return nil
}

func (s Seed) files() (map[string][]byte, error) {
	meta, err := s.MetaData()
	if err != nil {
		return nil, fmt.Errorf("cloudinit: render meta-data: %w", err)
	}
	user, err := s.UserData()
	if err != nil {
		return nil, fmt.Errorf("cloudinit: render user-data: %w", err)
	}
	return map[string][]byte{"meta-data": meta, "user-data": user}, nil
}

func writeISO(path string, files map[string][]byte) error {
	work, err := os.MkdirTemp(filepath.Dir(path), ".seed-work-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	d, err := diskfs.Create(path, isoSize, diskfs.SectorSizeDefault)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	// ISO 9660 only allows logical blocks of 2048 bytes or more.
	d.LogicalBlocksize = 2048
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeISO9660, WorkDir: work})
	if err != nil {
		return err
	}
	for name, data := range files {
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if _, err := f.Write(data); err != nil {
			return fmt.Errorf("write %s: %w", name, err)
		}
	}
	iso, ok := fs.(*iso9660.FileSystem)
	if !ok {
		return errors.New("go-diskfs returned no ISO 9660 file system")
	}
	// go-diskfs ignores FilesystemSpec.VolumeLabel for ISO 9660; the label
	// that NoCloud matches on must be set here.
	return iso.Finalize(iso9660.FinalizeOptions{
		RockRidge:        true,
		VolumeIdentifier: VolumeLabel,
	})
}
