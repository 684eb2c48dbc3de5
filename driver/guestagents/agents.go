// Package guestagents holds the solstice-guest builds that `make build`
// embeds into solstice-vm, so installing the driver is copying one file
// into Nomad's plugin_dir: Nomad loads every file there as a plugin, so the
// agents cannot sit beside the driver as separate files.
//
// The builds travel as one xz-compressed tar (about a third of their size),
// unpacked on first use into a directory named by the archive's hash, so a
// driver upgrade never runs an older agent.
//
// Unpacking is the dearest thing the driver does in memory: the xz decoder
// allocates the archive's whole dictionary (64 MiB at xz -9e) and touches as
// much of it as the tar is long, and all of it when the Go runtime hands it
// memory a freed allocation used before (which it zeroes). The plugin serves
// every VM of its node, so it unpacks one archive at a time, and decodes
// only as far as the agent asked for, writing every agent it passes on the
// way, so no agent is decoded twice into one cache directory.
package guestagents

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"

	"github.com/ulikunitz/xz"

	"github.com/solstice-ci/solstice/driver/atomicfile"
)

// ErrNotEmbedded means this solstice-vm was built without the agents
// (a plain `go build`, not `make build`).
var ErrNotEmbedded = errors.New("no guest agents are embedded in this build")

// maxAgentSize bounds one unpacked agent; the real ones are a few MiB.
const maxAgentSize = 64 << 20

// Embedded reports whether this binary carries the agents.
func Embedded() bool { return len(archive) > 0 }

// Name is an agent build's file name for a guest OS.
func Name(guestOS string) string { return "solstice-guest-" + guestOS + "-amd64" }

// Path returns the agent for guestOS, unpacked under dir (created if
// needed) on first use.
func Path(dir, guestOS string) (string, error) {
	return unpack(archive, dir, guestOS)
}

// unpacking serialises unpacks: tasks starting together on a fresh cache
// would otherwise each run a decoder, each with its own dictionary.
var unpacking sync.Mutex

func unpack(arch []byte, dir, guestOS string) (string, error) {
	if len(arch) == 0 {
		return "", ErrNotEmbedded
	}
	sum := sha256.Sum256(arch)
	dst := filepath.Join(dir, hex.EncodeToString(sum[:8]), Name(guestOS))
	if _, err := os.Stat(dst); err == nil {
		return dst, nil
	}
	unpacking.Lock()
	defer unpacking.Unlock()
	if _, err := os.Stat(dst); err == nil {
		return dst, nil // unpacked by a task this one waited for
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return "", fmt.Errorf("create the guest agent directory: %w", err)
	}
	err := extract(arch, filepath.Dir(dst), Name(guestOS))
	// The decoder's dictionary is garbage now; give it back rather than
	// let the plugin keep it resident until the scavenger gets to it.
	debug.FreeOSMemory()
	if err != nil {
		return "", fmt.Errorf("unpack the embedded guest agent for %s: %w", guestOS, err)
	}
	return dst, nil
}

// extract writes the archive's regular files into dir up to and including
// name, each through a temporary file and a rename, so concurrent tasks
// never see half an agent. The decoder's memory grows with what it
// decodes, so it stops there.
func extract(arch []byte, dir, name string) error {
	zr, err := xz.NewReader(bytes.NewReader(arch))
	if err != nil {
		return fmt.Errorf("open the archive: %w", err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%s is not in the archive", name)
		}
		if err != nil {
			return fmt.Errorf("read the archive: %w", err)
		}
		if h.Typeflag != tar.TypeReg {
			continue
		}
		member := filepath.Base(h.Name)
		if h.Size > maxAgentSize {
			return fmt.Errorf("%s is %d bytes, more than %d", member, h.Size, maxAgentSize)
		}
		if err := atomicfile.Write(filepath.Join(dir, member), io.LimitReader(tr, maxAgentSize), 0o755); err != nil {
			return err
		}
		if member == name {
			return nil
		}
	}
}
