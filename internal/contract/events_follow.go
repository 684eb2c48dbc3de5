package contract

import (
	"bytes"
	"cmp"
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

// quickPoll is the first wait at the start and after the file grew: a job
// writes its events in bursts (its start, a step's start and its first
// lines), so the next one is looked for soon, and the wait doubles up to
// PollInterval while the file stays still.
const quickPoll = 10 * time.Millisecond

// readSize is how much a Tail reads at a time.
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
	t := Tail{Open: fileSource(path)}
	_, err := t.Run(ctx, from, func(line []byte, next int64) error {
		ev, err := DecodeEvent(line)
		if err != nil {
			return fmt.Errorf("events: follow: line at offset %d: %w", next-int64(len(line))-1, err)
		}
		if err := fn(line, ev, next); err != nil {
			return err
		}
		if ev.Terminal() {
			return ErrStop
		}
		return nil
	})
	return err
}

// fileSource is the events file at path as a Tail's source. Its reader
// waits for the file to appear and, at its end, for more to be written;
// once ctx has ended it reads what is left and then fails with ctx's
// error, so a follower still gets every event already written.
func fileSource(path string) Source {
	return func(ctx context.Context, offset int64) (io.ReadCloser, error) {
		return &pollReader{ctx: ctx, path: path, offset: offset, wait: quickPoll}, nil
	}
}

type pollReader struct {
	ctx    context.Context
	path   string
	offset int64
	f      *os.File
	wait   time.Duration // the next wait at the end of the file
}

func (r *pollReader) Read(p []byte) (int, error) {
	for {
		if err := r.open(); err != nil {
			return 0, err
		}
		if r.f != nil {
			n, err := r.f.Read(p)
			if n > 0 {
				r.wait = quickPoll
				return n, nil
			}
			if err != nil && !errors.Is(err, io.EOF) {
				return 0, fmt.Errorf("events: follow: read: %w", err)
			}
		}
		if r.ctx.Err() != nil {
			return 0, r.ctx.Err()
		}
		wait := min(cmp.Or(r.wait, PollInterval), PollInterval)
		r.wait = min(wait*2, PollInterval)
		select {
		case <-r.ctx.Done():
		case <-time.After(wait):
		}
	}
}

// open opens the file once it exists, at the offset.
func (r *pollReader) open() error {
	if r.f != nil {
		return nil
	}
	f, err := os.Open(r.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("events: follow: %w", err)
	}
	if _, err := f.Seek(r.offset, io.SeekStart); err != nil {
		f.Close()
		return fmt.Errorf("events: follow: seek to %d: %w", r.offset, err)
	}
	r.f = f
	return nil
}

func (r *pollReader) Close() error {
	if r.f != nil {
		return r.f.Close()
	}
	return nil
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
		if offset-1-pos > MaxLine {
			return false, fmt.Errorf("events: follow: %w: the line before offset %d is over %d bytes", ErrLineTooLong, offset, MaxLine)
		}
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
