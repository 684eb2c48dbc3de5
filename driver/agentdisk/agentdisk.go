// Package agentdisk carries the guest agent into a VM on a read-only disk
// instead of over SSH. Copying a few MiB through an SSH session into an
// emulated guest costs seconds (the guest decrypts every byte); reading
// them from a virtio disk costs a fraction of that. One image is built per
// agent build and shared, read-only, by every VM that runs it.
//
// The image is raw: a 64 KiB header block whose first line names the
// agent (its sha256 and size), then the agent, zero-padded to whole
// blocks. A guest finds the disk by that line, whatever its OS calls the
// device, and copies the blocks out with dd as root (CopyScript). The
// padding is harmless: an executable's loader reads only the parts its
// headers name.
package agentdisk

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/solstice-ci/solstice/driver/atomicfile"
)

// BlockSize is the unit of the image: big enough that dd copies the agent
// in few reads, and a multiple of every sector size (raw devices on
// illumos and the BSDs only take whole sectors).
const BlockSize = 64 << 10

// magic starts the header line; the version follows it.
const magic = "solstice-agent-disk 1"

// maxAgentSize bounds the agent an image is made of.
const maxAgentSize = 64 << 20

// Disk is an agent's image on the host.
type Disk struct {
	Path   string // the image, mode 0444
	Header string // its first line, without the newline
	Blocks int    // blocks of agent after the header block
}

// Ensure returns the image of the agent at agentPath, under dir, building
// it first when it is not there yet. Images are named by the agent's
// sha256 and written through a temporary file and a rename, so concurrent
// tasks share one and never see half of one.
func Ensure(dir, agentPath string) (Disk, error) {
	data, err := readAgent(agentPath)
	if err != nil {
		return Disk{}, err
	}
	sum := sha256.Sum256(data)
	d := Disk{
		Path:   filepath.Join(dir, hex.EncodeToString(sum[:])+".img"),
		Header: fmt.Sprintf("%s %x %d", magic, sum, len(data)),
		Blocks: (len(data) + BlockSize - 1) / BlockSize,
	}
	if st, err := os.Stat(d.Path); err == nil && st.Size() == int64(BlockSize*(1+d.Blocks)) {
		return d, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return Disk{}, fmt.Errorf("create the agent disk directory: %w", err)
	}
	if err := write(d, data); err != nil {
		return Disk{}, fmt.Errorf("build the agent disk for %s: %w", agentPath, err)
	}
	return d, nil
}

func readAgent(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read the guest agent: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxAgentSize+1))
	if err != nil {
		return nil, fmt.Errorf("read the guest agent %s: %w", p, err)
	}
	if len(data) > maxAgentSize {
		return nil, fmt.Errorf("the guest agent %s is larger than %d bytes", p, maxAgentSize)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("the guest agent %s is empty", p)
	}
	return data, nil
}

func write(d Disk, agent []byte) error {
	img := make([]byte, BlockSize*(1+d.Blocks))
	copy(img, d.Header+"\n")
	copy(img[BlockSize:], agent)
	return atomicfile.Write(d.Path, bytes.NewReader(img), 0o444)
}

// devices are where guests show a virtio disk, by OS: Linux, illumos (the
// whole disk, as a block device, which takes reads of any size), FreeBSD,
// OpenBSD and NetBSD (the whole-disk partition). A pattern that matches
// nothing stays as written and is skipped.
var devices = []string{"/dev/vd[a-z]", "/dev/dsk/*p0", "/dev/vtbd[0-9]", "/dev/sd[0-9]c", "/dev/ld[0-9]d"}

// ErrNotFound is the copy script's report that no disk had the header.
var ErrNotFound = errors.New("no disk in the guest carries the agent")

// NotFoundExit is the copy script's exit status when no disk matched.
const NotFoundExit = 3

// CopyScript is a POSIX shell script, run as root in the guest, that
// writes the agent (zero-padded) to its stdout: it reads the first line of
// each candidate device with the shell's own read and copies the blocks
// after the header from the one whose first line is d's header. It forks
// nothing but that dd: every process costs an emulated guest tens of
// milliseconds. It exits NotFoundExit when no disk has the header.
func (d Disk) CopyScript() string { return d.copyScript(devices) }

func (d Disk) copyScript(devices []string) string {
	return fmt.Sprintf(`for d in %s; do `+
		`[ -r "$d" ] || continue; `+
		`IFS= read -r h < "$d" 2>/dev/null || continue; `+
		`if [ "$h" = "%s" ]; then exec dd if="$d" bs=%d skip=1 count=%d 2>/dev/null; fi; `+
		`done; exit %d`,
		strings.Join(devices, " "), d.Header, BlockSize, d.Blocks, NotFoundExit)
}
