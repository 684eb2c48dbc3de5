// Package cloudinit writes the NoCloud seed a Solstice guest reads on first
// boot: a volume labelled "cidata" holding meta-data and a #cloud-config
// user-data, the way cloud-init's NoCloud datasource expects. The volume is
// ISO 9660 (FormatISO) or FAT (FormatFAT), whichever the image reads.
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

// A seed is a few KiB of text; the volume needs room for its own metadata
// too.
const (
	isoSize = 1 << 20
	fatSize = 1 << 20
)

// Format is the kind of volume a seed is written as: the catalog's
// seed_format for an image.
type Format string

const (
	// FormatISO is an ISO 9660 volume, attached as a CD-ROM: what
	// cloud-init images read.
	FormatISO Format = "nocloud"
	// FormatFAT is a FAT volume, attached as a read-only disk: what
	// illumos/metadata-agent images look for (pcfs), and cloud-init reads
	// it too. Its seed gives the login key as meta-data public-keys, for
	// the image's default user.
	FormatFAT Format = "nocloud-fat"
)

// Formats lists the seed formats the driver writes.
var Formats = []Format{FormatISO, FormatFAT}

// ParseFormat checks a catalog's seed_format.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("cloudinit: seed format %q is neither %q nor %q", s, FormatISO, FormatFAT)
}

// FileName is the seed's file name in a task's directory.
func (f Format) FileName() string {
	if f == FormatFAT {
		return "seed.img"
	}
	return "seed.iso"
}

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
	// PublicKeys go into meta-data public-keys: cloud-init gives them to
	// the image's default user (metadata-agent to root). A seed names
	// Users, PublicKeys or both.
	PublicKeys []string
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
	case len(s.Users) == 0 && len(s.PublicKeys) == 0:
		return errors.New("cloudinit: seed needs a user or a public key")
	}
	for i, k := range s.PublicKeys {
		if k == "" || strings.ContainsAny(k, "\r\n") {
			return fmt.Errorf("cloudinit: public-keys[%d] is not one key line", i)
		}
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
	return yaml.Marshal(struct {
		InstanceID string   `yaml:"instance-id"`
		Hostname   string   `yaml:"local-hostname"`
		PublicKeys []string `yaml:"public-keys,omitempty"`
	}{s.InstanceID, s.Hostname, s.PublicKeys})
}

// UserData renders the #cloud-config user-data file. With no Users it
// names none, so cloud-init creates the image's default user.
func (s Seed) UserData() ([]byte, error) {
	body, err := yaml.Marshal(struct {
		Users   []User   `yaml:"users,omitempty"`
		SSHKeys *HostKey `yaml:"ssh_keys,omitempty"`
	}{s.Users, s.HostKey})
	if err != nil {
		return nil, err
	}
	return append([]byte("#cloud-config\n"), body...), nil
}

// WriteISO writes the seed as a cidata ISO at path (see Write).
func WriteISO(path string, s Seed) error { return Write(path, FormatISO, s) }

// Write writes the seed as a cidata volume of format f at path, replacing
// any file there. The volume is readable by its owner only, and its files
// are staged next to it, not in the host's shared temporary directory: a
// seed may carry a host key.
func Write(path string, f Format, s Seed) error {
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
	write := writeISO
	switch f {
	case FormatISO:
	case FormatFAT:
		write = writeFAT
	default:
		return fmt.Errorf("cloudinit: write seed %s: unknown format %q", path, f)
	}
	if err := write(path, files); err != nil {
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
	if err := writeFiles(fs, files); err != nil {
		return err
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

// writeFAT writes a FAT12 volume labelled cidata, as mkfs.fat would make
// one this small: every FAT reader (Linux vfat, illumos pcfs) knows it.
func writeFAT(path string, files map[string][]byte) error {
	d, err := diskfs.Create(path, fatSize, diskfs.SectorSizeDefault)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		return err
	}
	fs, err := d.CreateFilesystem(disk.FilesystemSpec{Partition: 0, FSType: filesystem.TypeFat12, VolumeLabel: VolumeLabel})
	if err != nil {
		return err
	}
	return writeFiles(fs, files)
}

// writeFiles writes the seed's files into the root of a file system.
func writeFiles(fs filesystem.FileSystem, files map[string][]byte) error {
	for name, data := range files {
		f, err := fs.OpenFile("/"+name, os.O_CREATE|os.O_RDWR)
		if err != nil {
			return fmt.Errorf("create %s: %w", name, err)
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return fmt.Errorf("write %s: %w", name, err)
		}
		if err := f.Close(); err != nil {
			return fmt.Errorf("close %s: %w", name, err)
		}
	}
	return nil
}
