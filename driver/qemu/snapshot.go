package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// RAM keeps a guest's memory in a host file instead of anonymous memory:
// the template of warm starts (see package template) runs with Shared, so
// the file holds its RAM once it is saved; each clone maps the same file
// privately (copy on write), so restoring costs no copy of guest memory and
// clones share the pages none of them has written.
type RAM struct {
	Path   string
	Shared bool
}

// Snapshot parts of a Spec. A template and its clones must have the same
// devices, so both get a vmgenid device: its generation id changes with
// every clone, which tells the guest kernel to reseed its random generator.
type snapshotArgs struct {
	ramFD, incomingFD int // inherited descriptors; 0 when unused
}

// extraFiles are the descriptors a snapshot spec passes beyond the fd sets:
// QEMU 7.2 opens a memory-backend-file by path only (no /dev/fdset), so the
// RAM file comes as an inherited descriptor named /proc/self/fd/N, and the
// migration stream of a clone as fd:N.
func (s Spec) extraFiles() []Passed {
	var files []Passed
	if s.RAM != nil {
		files = append(files, Passed{Path: s.RAM.Path, Writable: true})
	}
	if s.Incoming != "" {
		files = append(files, Passed{Path: s.Incoming})
	}
	return files
}

// snapshotFDs numbers the descriptors of extraFiles, which follow the fd
// sets' descriptors.
func (s Spec) snapshotFDs() snapshotArgs {
	next := fdFirstFile + len(descriptors(s.passed()))
	var a snapshotArgs
	if s.RAM != nil {
		a.ramFD = next
		next++
	}
	if s.Incoming != "" {
		a.incomingFD = next
	}
	return a
}

// openExtra opens extraFiles in snapshotFDs order. The RAM file is opened
// read-write in both modes: QEMU 7.2 maps a readonly=on backend without
// write permission, so a private mapping needs a writable open too (QEMU
// 8.2's rom= option would lift that). QEMU reopens /proc/self/fd/N, which
// checks the file's own permissions, so the file belongs to QEMU's user.
func (s Spec) openExtra() ([]*os.File, error) {
	var open []*os.File
	for _, p := range s.extraFiles() {
		flag := os.O_RDONLY
		if p.Writable {
			flag = os.O_RDWR
		}
		f, err := os.OpenFile(p.Path, flag, 0)
		if err != nil {
			CloseFiles(open)
			return nil, fmt.Errorf("open %s for qemu: %w", p.Path, err)
		}
		open = append(open, f)
	}
	return open, nil
}

// snapshotArgList is the snapshot part of QEMU's command line.
func (s Spec) snapshotArgList() []string {
	if s.RAM == nil && s.Incoming == "" {
		return nil
	}
	fds := s.snapshotFDs()
	var args []string
	if s.RAM != nil {
		share := "off"
		if s.RAM.Shared {
			share = "on"
		}
		args = append(args,
			"-object", fmt.Sprintf("memory-backend-file,id=ram0,size=%dM,mem-path=/proc/self/fd/%d,share=%s", s.MemoryMB, fds.ramFD, share),
			"-machine", "memory-backend=ram0",
			"-device", "vmgenid,guid=auto",
		)
	}
	if s.Incoming != "" {
		// defer: the x-ignore-shared capability must be set before the
		// stream is read, and only QMP can set it in QEMU 7.2.
		args = append(args, "-incoming", "defer")
	}
	return args
}

// diskDrive is the -drive value of the task's disk: its overlay on the base,
// or, for a clone, its overlay on the template's frozen overlay on the base.
func (s Spec) diskDrive() string {
	d := "file=" + FDSet(setDisk) + ",if=virtio,format=qcow2,cache=unsafe,discard=unmap,"
	if s.Template == "" {
		return d + "backing.driver=" + s.BaseFormat + ",backing.file.driver=file,backing.file.filename=" + FDSet(setBase)
	}
	return d + "backing.driver=qcow2,backing.file.driver=file,backing.file.filename=" + FDSet(setTemplate) +
		",backing.backing.driver=" + s.BaseFormat + ",backing.backing.file.driver=file,backing.backing.file.filename=" + FDSet(setBase)
}

// ignoreShared is the migration capability that leaves RAM in a shared
// memory backend out of the stream: the file already holds it.
var ignoreShared = map[string]any{"capabilities": []map[string]any{{"capability": "x-ignore-shared", "state": true}}}

// restore feeds a clone its template's device state (fd:N of Incoming) and
// waits until the guest runs again.
func restore(ctx context.Context, q *QMP, fd int) error {
	if _, err := q.Execute(ctx, "migrate-set-capabilities", ignoreShared); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if _, err := q.Execute(ctx, "migrate-incoming", map[string]any{"uri": "fd:" + strconv.Itoa(fd)}); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if err := waitMigration(ctx, q); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// The template was paused when it was saved, and QEMU restores that
	// run state: the clone starts paused unless told to go on.
	st, err := q.Status(ctx)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if st != "running" {
		if _, err := q.Execute(ctx, "cont", nil); err != nil {
			return fmt.Errorf("restore: resume the clone: %w", err)
		}
	}
	return nil
}

// SaveState pauses the guest and writes its device state to path (its RAM
// stays in the shared RAM file, see RAM). The guest stays paused: a
// template is quit after it is saved, never resumed.
func (q *QMP) SaveState(ctx context.Context, path string) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("create vm state file: %w", err)
	}
	defer f.Close()
	if _, err := q.Execute(ctx, "stop", nil); err != nil {
		return fmt.Errorf("save vm state: %w", err)
	}
	if _, err := q.Execute(ctx, "migrate-set-capabilities", ignoreShared); err != nil {
		return fmt.Errorf("save vm state: %w", err)
	}
	if _, err := q.execute(ctx, "getfd", map[string]any{"fdname": "state"}, unix.UnixRights(int(f.Fd()))); err != nil {
		return fmt.Errorf("save vm state: pass the state file: %w", err)
	}
	if _, err := q.Execute(ctx, "migrate", map[string]any{"uri": "fd:state"}); err != nil {
		return fmt.Errorf("save vm state: %w", err)
	}
	if err := waitMigration(ctx, q); err != nil {
		return fmt.Errorf("save vm state: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("save vm state: sync %s: %w", path, err)
	}
	return nil
}

// waitMigration polls query-migrate until the migration ends.
func waitMigration(ctx context.Context, q *QMP) error {
	for {
		raw, err := q.Execute(ctx, "query-migrate", nil)
		if err != nil {
			return err
		}
		var st struct {
			Status    string `json:"status"`
			ErrorDesc string `json:"error-desc"`
		}
		if err := json.Unmarshal(raw, &st); err != nil {
			return fmt.Errorf("decode query-migrate: %w", err)
		}
		switch st.Status {
		case "completed":
			return nil
		case "failed", "cancelled":
			return fmt.Errorf("migration %s: %s", st.Status, st.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("migration still %q: %w", st.Status, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// write sends one command line, with oob as ancillary data when set.
func (q *QMP) write(b, oob []byte) error {
	if len(oob) == 0 {
		_, err := q.conn.Write(b)
		return err
	}
	uc, ok := q.conn.(*net.UnixConn)
	if !ok {
		return errors.New("passing a descriptor needs a unix socket")
	}
	_, _, err := uc.WriteMsgUnix(b, oob, nil)
	return err
}

// startIncoming restores a clone started with Incoming; other guests are
// running already.
func startIncoming(ctx context.Context, spec Spec, q *QMP) error {
	if spec.Incoming == "" {
		return nil
	}
	return restore(ctx, q, spec.snapshotFDs().incomingFD)
}
