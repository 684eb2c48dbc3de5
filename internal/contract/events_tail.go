package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// MaxLine is the longest line of an events stream a reader holds in
// memory. The agent cuts log lines at 64 KiB and step summaries at 1 MiB,
// and JSON escaping can grow text about six-fold, so every event the
// agent writes fits; a longer line is not one of its events, and since
// the guest is hostile no reader may buffer it whole.
const MaxLine = 8 << 20

// ErrLineTooLong ends a Tail at a line longer than its limit. It is not
// resumed: the line would be just as long the next time.
var ErrLineTooLong = errors.New("events: line longer than the limit")

// ErrStop, returned by a Tail's line function, ends the tail without an
// error.
var ErrStop = errors.New("events: stop following")

// A Source opens a stream of lines at a byte offset: a local file, a
// command's output over SSH, Nomad's file stream API. Its reader may end
// or fail at any point, even mid-line; a Tail opens the source again at
// the offset just after the last whole line.
type Source func(ctx context.Context, offset int64) (io.ReadCloser, error)

// A Tail reads a stream of newline-ended lines from a Source, resuming
// where it left off when the stream breaks. The byte offset just after a
// line is the resume token (the events file's contract), so a resumed
// stream delivers no line twice and skips none.
type Tail struct {
	Open Source
	// Resume decides what happens when the source ends or fails with err:
	// nil opens it again at offset (after waiting as long as Resume
	// likes), an error ends the tail with that error. A nil Resume ends
	// the tail at the first interruption.
	Resume func(ctx context.Context, offset int64, err error) error
	// Max is the longest line accepted, without its newline; MaxLine when
	// zero.
	Max int
}

// lineErr is an error of the line function (or of the line itself):
// the tail ends with it rather than resuming.
type lineErr struct{ err error }

func (e lineErr) Error() string { return e.err.Error() }

// Run calls fn with each whole line from offset from on, without its
// newline (the bytes are valid only during the call), and the offset just
// after it. It returns the offset after the last delivered line, and nil
// when fn returned ErrStop; fn's other errors; ErrLineTooLong (wrapped);
// ctx's error once ctx has ended; or what Resume returned.
func (t *Tail) Run(ctx context.Context, from int64, fn func(line []byte, next int64) error) (int64, error) {
	s := &splitter{max: t.Max, off: from, fn: fn}
	if s.max <= 0 {
		s.max = MaxLine
	}
	for {
		err := t.once(ctx, s)
		var le lineErr
		switch {
		case errors.As(err, &le) && errors.Is(le.err, ErrStop):
			return s.off, nil
		case errors.As(err, &le):
			return s.off, le.err
		case ctx.Err() != nil:
			return s.off, ctx.Err()
		case t.Resume == nil:
			return s.off, err
		}
		if err := t.Resume(ctx, s.off, err); err != nil {
			return s.off, err
		}
	}
}

// once reads one opening of the source until it breaks or a line ends
// the tail. A partial line left by an earlier opening is dropped: this
// one starts at that line.
func (t *Tail) once(ctx context.Context, s *splitter) error {
	r, err := t.Open(ctx, s.off)
	if err != nil {
		return fmt.Errorf("open the stream at offset %d: %w", s.off, err)
	}
	defer r.Close()
	s.pending = s.pending[:0]
	if s.buf == nil {
		s.buf = make([]byte, readSize)
	}
	for {
		n, err := r.Read(s.buf)
		if n > 0 {
			if err := s.feed(s.buf[:n]); err != nil {
				return lineErr{err}
			}
		}
		switch {
		case errors.Is(err, io.EOF):
			return fmt.Errorf("the stream ended at offset %d: %w", s.off+int64(len(s.pending)), err)
		case err != nil:
			return err
		}
	}
}

// splitter cuts bytes into lines, holding at most max bytes of a line
// that has not ended yet.
type splitter struct {
	max     int
	off     int64 // just after the last delivered line
	pending []byte
	buf     []byte
	fn      func([]byte, int64) error
}

// feed delivers the lines data completes and keeps the rest.
func (s *splitter) feed(data []byte) error {
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			if len(s.pending)+len(data) > s.max {
				return s.tooLong()
			}
			s.keep(data)
			return nil
		}
		if len(s.pending)+i > s.max {
			return s.tooLong()
		}
		line := data[:i]
		if len(s.pending) > 0 {
			s.keep(line)
			line = s.pending
		}
		s.off += int64(len(line) + 1)
		if err := s.fn(line, s.off); err != nil {
			return err
		}
		s.pending = s.release(s.pending)
		data = data[i+1:]
	}
	return nil
}

// keep appends data to the pending line, growing its buffer no further
// than max: append's own growth would overshoot by up to a quarter.
func (s *splitter) keep(data []byte) {
	if need := len(s.pending) + len(data); need > cap(s.pending) {
		b := make([]byte, len(s.pending), min(max(need, 2*cap(s.pending)), s.max))
		copy(b, s.pending)
		s.pending = b
	}
	s.pending = append(s.pending, data...)
}

// release empties the pending buffer, giving back a big one: a rare long
// line should not pin its memory for the rest of the stream.
func (s *splitter) release(b []byte) []byte {
	if cap(b) > readSize {
		return nil
	}
	return b[:0]
}

func (s *splitter) tooLong() error {
	return fmt.Errorf("%w: the line at offset %d is over %d bytes", ErrLineTooLong, s.off, s.max)
}
