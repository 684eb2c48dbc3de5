// Package template keeps the saved VMs that warm starts clone: one per
// (image, machine shape, accelerator, plugin version) on a client, each a
// directory with a frozen disk overlay, a RAM file, the device state and a
// manifest. A template is written once, by its builder, and only read after
// that: clones map its RAM privately and put their own overlay on its disk.
//
// The package decides what a template is and whether one on disk can be
// trusted; booting and saving one is the plugin's business (it has the VM
// machinery), so the rules here stay testable without QEMU.
package template

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/solstice-ci/solstice/driver/image"
)

// Key is everything that makes two templates interchangeable. Any change,
// a new image checksum, another machine shape or a new plugin (which brings
// its own guest agent and QEMU command line), makes another template.
type Key struct {
	Image         string `json:"image"`          // catalog label, for people reading the directory
	ImageIdentity string `json:"image_identity"` // sha256 of the base, or what stands for it
	MemoryMB      int    `json:"memory_mb"`
	CPUs          int    `json:"cpus"`
	DiskSize      int64  `json:"disk_size"`
	Accel         string `json:"accel"`
	QEMUVersion   string `json:"qemu_version"`
	PluginVersion string `json:"plugin_version"`
	AgentVersion  string `json:"agent_version"`
	SeedFormat    string `json:"seed_format"`
	User          string `json:"user"`
	// Layout is what a template holds besides a booted guest; a template
	// of another layout is never a match (see CurrentLayout).
	Layout int `json:"layout"`
}

// CurrentLayout is the layout templates are built with now: 3, the guest
// agent and its directories are in place (jobrun.PlaceAgent), so a clone's
// job skips the copy from the agent disk, and the agent serves the
// template's agent port (contract.AgentServe), so a clone takes its
// identity and its job without an SSH login.
const CurrentLayout = 3

// Validate refuses a key that would name no usable template.
func (k Key) Validate() error {
	switch {
	case k.Image == "" || k.ImageIdentity == "":
		return errors.New("template key names no image")
	case k.MemoryMB < 64 || k.CPUs < 1:
		return fmt.Errorf("template key: %d MiB and %d cpus is too small for a guest", k.MemoryMB, k.CPUs)
	case k.Accel == "" || k.PluginVersion == "":
		return errors.New("template key lacks the accelerator or plugin version")
	}
	return nil
}

// ID names a key's directory: the hash of its canonical JSON, so equal keys
// always meet in the same place and a changed one never reuses a template.
func (k Key) ID() string {
	b, _ := json.Marshal(k) // a struct of strings and ints always encodes
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// Files of a template directory.
const (
	ManifestFile = "manifest.json"
	DiskFile     = "disk.qcow2" // frozen: clones put their overlays on it
	RAMFile      = "ram"        // guest memory; clones map it privately
	StateFile    = "state"      // device state (QMP migrate)
	LoginKeyFile = "login.key"  // the template's login key: the driver's alone
	ConsoleFile  = "console.log"
)

// Manifest is written last, when every file of the template is complete:
// a directory without one is a build that never finished.
type Manifest struct {
	Key       Key       `json:"key"`
	CreatedAt time.Time `json:"created_at"`
	// HostKey is the template guest's host key (wire format), pinned by
	// the first login into a clone, before its identity is replaced.
	HostKey []byte `json:"host_key"`
	// Files the clones read, as they were when the template was saved. A
	// file that differs has been changed since and the template is broken.
	Disk  FileStamp `json:"disk"`
	RAM   FileStamp `json:"ram"`
	State FileStamp `json:"state"`
	// StateSHA256 checks the small device state file's content too.
	StateSHA256 string `json:"state_sha256"`
}

// FileStamp identifies one version of a file cheaply: any write to it
// changes its ctime, which even the file's owner cannot set back.
type FileStamp struct {
	Size  int64  `json:"size"`
	Inode uint64 `json:"inode"`
	Ctime int64  `json:"ctime_ns"`
}

// Stamp reads path's stamp.
func Stamp(path string) (FileStamp, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return FileStamp{}, fmt.Errorf("stat %s: %w", path, err)
	}
	return FileStamp{Size: st.Size, Inode: st.Ino, Ctime: st.Ctim.Nano()}, nil
}

// Template is a complete template found on disk.
type Template struct {
	Dir      string
	Manifest Manifest
}

// Path is one of the template's files.
func (t *Template) Path(name string) string { return filepath.Join(t.Dir, name) }

// LoginKey is the private key that logs into the template's guest (and so
// into a clone until the clone's identity is replaced).
func (t *Template) LoginKey() ([]byte, error) {
	b, err := os.ReadFile(t.Path(LoginKeyFile))
	if err != nil {
		return nil, fmt.Errorf("read template login key: %w", err)
	}
	return b, nil
}

// check compares the files with the manifest's stamps.
func (t *Template) check() error {
	for _, f := range []struct {
		name string
		want FileStamp
	}{{DiskFile, t.Manifest.Disk}, {RAMFile, t.Manifest.RAM}, {StateFile, t.Manifest.State}} {
		got, err := Stamp(t.Path(f.name))
		if err != nil {
			return err
		}
		if got != f.want {
			return fmt.Errorf("%s changed since the template was saved", f.name)
		}
	}
	sum, err := image.HashFile(context.Background(), t.Path(StateFile))
	if err != nil {
		return fmt.Errorf("hash the template's %s: %w", StateFile, err)
	}
	if sum != t.Manifest.StateSHA256 {
		return fmt.Errorf("%s does not match its checksum", StateFile)
	}
	return nil
}
