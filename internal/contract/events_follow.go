package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"time"
)

// PollInterval is how often Follow looks for new data at the end of the
// file. The file lives on the same machine as the follower (the guest, or
// the allocation directory), so polling is cheap and needs no inotify or
// event ports, which differ per OS.
var PollInterval = 100 * time.Millisecond

// readSize is how much Follow reads at a time.
const readSize = 64 << 10

// Follow tails the events file at path from byte offset from (0, or an
// offset an earlier Follow reported), calling fn with each event and the
// offset just after it (the resume token). It waits for the file to
// appear and for more data, and returns nil after delivering job_finished
// or infra_error. It returns fn's error, a decoding error, or — after
// delivering every complete event already in the file — ctx's error.
func Follow(ctx context.Context, path string, from int64, fn func(ev Event, next int64) error) error {
	return FollowLines(ctx, path, from, func(_ []byte, ev Event, next int64) error { return fn(ev, next) })
}

// FollowLines is Follow for readers that pass events on verbatim: fn also
// gets the line's bytes as stored (without the newline; valid only during
// the call). Resuming from the offset after the stream's last event
// returns nil at once, so a reader that saw the end may safely follow
// again.
func FollowLines(ctx context.Context, path string, from int64, fn func(line []byte, ev Event, next int64) error) error {
	if ended, err := endsAt(path, from); ended || err != nil {
		return err
	}
	t := &tail{path: path, offset: from, fn: fn}
	defer t.close()
	for {
		done, err := t.drain()
		if done || err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			// One last look: the terminal event may have just been written.
			if done, err := t.drain(); done || err != nil {
				return err
			}
			return ctx.Err()
		case <-time.After(PollInterval):
		}
	}
}

type tail struct {
	path    string
	f       *os.File
	offset  int64 // just after the last delivered line
	pending []byte
	buf     []byte
	fn      func([]byte, Event, int64) error
}

func (t *tail) close() {
	if t.f != nil {
		t.f.Close()
	}
}

// drain delivers every complete line now in the file. done reports a
// terminal event.
func (t *tail) drain() (done bool, err error) {
	if t.f == nil {
		f, err := os.Open(t.path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("events: follow: %w", err)
		}
		if _, err := f.Seek(t.offset, io.SeekStart); err != nil {
			f.Close()
			return false, fmt.Errorf("events: follow: seek to %d: %w", t.offset, err)
		}
		t.f = f
	}
	if t.buf == nil {
		t.buf = make([]byte, readSize)
	}
	for {
		n, err := t.f.Read(t.buf)
		if n > 0 {
			t.pending = append(t.pending, t.buf[:n]...)
			if done, err := t.deliver(); done || err != nil {
				return done, err
			}
		}
		if errors.Is(err, io.EOF) || n == 0 {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("events: follow: read: %w", err)
		}
	}
}

// deliver hands the complete lines in pending to fn.
func (t *tail) deliver() (bool, error) {
	rest := t.pending
	defer func() { t.pending = t.pending[:copy(t.pending, rest)] }()
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return false, nil
		}
		line := rest[:i]
		ev, err := DecodeEvent(line)
		if err != nil {
			return false, fmt.Errorf("events: follow: line at offset %d: %w", t.offset, err)
		}
		t.offset += int64(i + 1)
		rest = rest[i+1:]
		if err := t.fn(line, ev, t.offset); err != nil {
			return false, err
		}
		if ev.Terminal() {
			return true, nil
		}
	}
}

// endsAt reports whether the event that ends just before offset is a
// terminal one. It reads backwards from offset to the start of that line.
func endsAt(path string, offset int64) (bool, error) {
	if offset <= 0 {
		return false, nil
	}
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("events: follow: %w", err)
	}
	defer f.Close()
	var chunks [][]byte               // backwards
	for pos := offset - 1; pos > 0; { // offset-1 is the newline of the line before
		n := min(int64(readSize), pos)
		pos -= n
		chunk := make([]byte, n)
		if _, err := f.ReadAt(chunk, pos); err != nil {
			return false, fmt.Errorf("events: follow: read before offset %d: %w", offset, err)
		}
		if i := bytes.LastIndexByte(chunk, '\n'); i >= 0 {
			chunks = append(chunks, chunk[i+1:])
			break
		}
		chunks = append(chunks, chunk)
	}
	slices.Reverse(chunks)
	ev, err := DecodeEvent(bytes.Join(chunks, nil))
	if err != nil {
		return false, fmt.Errorf("events: follow: offset %d is not the end of an event: %w", offset, err)
	}
	return ev.Terminal(), nil
}
