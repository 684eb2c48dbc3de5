// Package disk makes the per-task disks: a qcow2 overlay on a read-only base
// image, so that starting a task costs the same whatever the base's size and
// the base is never written.
package disk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Tool runs one qemu-img binary. The plugin config names the binary, so it
// travels with the value instead of living in a package variable that every
// caller would share.
type Tool struct {
	Binary string // empty means qemu-img from PATH
}

// Info is what qemu-img tells about an image.
type Info struct {
	Format         string `json:"format"`
	VirtualSize    int64  `json:"virtual-size"`
	BackingFile    string `json:"backing-filename"`
	FormatSpecific struct {
		Data struct {
			DataFile string `json:"data-file"` // qcow2's external data file
		} `json:"data"`
	} `json:"format-specific"`
}

// ErrNotSelfContained refuses an image that names other files.
var ErrNotSelfContained = errors.New("the image is not self-contained")

// SelfContained refuses an image whose header names another file: a
// backing file or a qcow2 external data file. QEMU opens whatever path the
// header says, so a base image naming /etc/shadow or a Nomad secret would
// put that host file's bytes into the guest's disk.
func (i Info) SelfContained() error {
	switch {
	case i.BackingFile != "":
		return fmt.Errorf("%w: it names a backing file (%s), which QEMU would read from this host; flatten it with qemu-img convert",
			ErrNotSelfContained, i.BackingFile)
	case i.FormatSpecific.Data.DataFile != "":
		return fmt.Errorf("%w: it names an external data file (%s), which QEMU would read from this host; flatten it with qemu-img convert",
			ErrNotSelfContained, i.FormatSpecific.Data.DataFile)
	}
	return nil
}

// Inspect reads an image's header. It is also how a corrupt or truncated
// download is caught before any guest tries to boot from it.
func (t Tool) Inspect(ctx context.Context, path, format string) (Info, error) {
	args := []string{"info", "--output=json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	var info Info
	if err := t.runJSON(ctx, &info, append(args, path)...); err != nil {
		return Info{}, fmt.Errorf("inspect image %s: %w", path, err)
	}
	return info, nil
}

// Check runs qemu-img's consistency check (qcow2 only; raw has nothing to
// check).
func (t Tool) Check(ctx context.Context, path, format string) error {
	if format != "qcow2" {
		return nil
	}
	if _, err := t.run(ctx, "check", "-q", "-f", format, path); err != nil {
		return fmt.Errorf("check image %s: %w", path, err)
	}
	return nil
}

// CreateOverlay makes a qcow2 at path backed by base. The overlay is sized
// to size bytes when that is larger than the base, never smaller: shrinking
// would cut off the guest's file system. A base that is not self-contained
// is refused here too, so an image cached before that rule existed cannot
// slip through.
func (t Tool) CreateOverlay(ctx context.Context, base, baseFormat, path string, size int64) error {
	info, err := t.Inspect(ctx, base, baseFormat)
	if err != nil {
		return err
	}
	if err := info.SelfContained(); err != nil {
		return fmt.Errorf("base image %s: %w", base, err)
	}
	args := []string{"create", "-q", "-f", "qcow2", "-b", base, "-F", baseFormat, path}
	if size > info.VirtualSize {
		args = append(args, strconv.FormatInt(size, 10))
	}
	if _, err := t.run(ctx, args...); err != nil {
		os.Remove(path)
		return fmt.Errorf("create overlay %s on %s: %w", path, base, err)
	}
	return nil
}

// runJSON runs qemu-img with an --output=json command and decodes its
// output into v.
func (t Tool) runJSON(ctx context.Context, v any, args ...string) error {
	out, err := t.run(ctx, args...)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("decode qemu-img output: %w", err)
	}
	return nil
}

func (t Tool) run(ctx context.Context, args ...string) ([]byte, error) {
	bin := t.Binary
	if bin == "" {
		bin = "qemu-img"
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s", err, msg)
	}
	return out, nil
}

// ParseSize reads sizes the way people write them in job files: "20GiB",
// "512MiB", "10G", "1.5TiB", or a plain byte count.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("size is empty")
	}
	i := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' && r != '-' })
	num, unit := t, ""
	if i >= 0 {
		num, unit = t[:i], strings.TrimSpace(t[i:])
	}
	mult, ok := sizeUnits[strings.ToLower(unit)]
	if !ok {
		return 0, fmt.Errorf("size %q: unknown unit %q (use B, KiB, MiB, GiB or TiB)", s, unit)
	}
	v, err := strconv.ParseFloat(num, 64)
	if err != nil || v <= 0 {
		return 0, fmt.Errorf("size %q is not a positive number", s)
	}
	// Converting a float beyond int64 gives a garbage (often negative)
	// size, which would slip past any cap.
	if v*float64(mult) >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q is too large", s)
	}
	return int64(v * float64(mult)), nil
}

var sizeUnits = map[string]int64{
	"": 1, "b": 1,
	"k": 1 << 10, "kb": 1 << 10, "kib": 1 << 10,
	"m": 1 << 20, "mb": 1 << 20, "mib": 1 << 20,
	"g": 1 << 30, "gb": 1 << 30, "gib": 1 << 30,
	"t": 1 << 40, "tb": 1 << 40, "tib": 1 << 40,
}
