package contract

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"
)

// flakySource serves data from any offset, but each opening breaks after
// cut bytes (mid-line, mostly), as a dropped connection would.
type flakySource struct {
	data  []byte
	cut   int
	opens []int64
}

func (s *flakySource) open(_ context.Context, off int64) (io.ReadCloser, error) {
	s.opens = append(s.opens, off)
	end := len(s.data)
	if s.cut > 0 {
		end = min(end, int(off)+s.cut)
	}
	return io.NopCloser(io.MultiReader(bytes.NewReader(s.data[off:end]), errReader{io.ErrUnexpectedEOF})), nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

type gotLine struct {
	line string
	next int64
}

// testCtx bounds a test that would otherwise spin on a bug.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// resumeAtOnce resumes without waiting.
func resumeAtOnce(context.Context, int64, error) error { return nil }

func TestTailResumesAtLineOffsets(t *testing.T) {
	lines := []string{"one", "", "three three", "4", strings.Repeat("five", 9), "six"}
	// Every opening breaks after 40 bytes: longer than any line, so the
	// stream gets through, and mid-line each time.
	src := &flakySource{data: []byte(strings.Join(lines, "\n") + "\n"), cut: 40}
	var got []gotLine
	var ends []int64 // offsets just after each line: the only valid resume points
	tail := Tail{Open: src.open, Resume: resumeAtOnce}
	off, err := tail.Run(testCtx(t), 0, func(l []byte, next int64) error {
		got = append(got, gotLine{string(l), next})
		ends = append(ends, next)
		if len(got) == len(lines) {
			return ErrStop
		}
		return nil
	})
	if err != nil || off != int64(len(src.data)) {
		t.Fatalf("Run = %d, %v", off, err)
	}
	var want []gotLine
	var at int64
	for _, l := range lines {
		at += int64(len(l) + 1)
		want = append(want, gotLine{l, at})
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("lines %v\nwant  %v", got, want)
	}
	valid := map[int64]bool{0: true}
	for _, e := range ends {
		valid[e] = true
	}
	for _, o := range src.opens {
		if !valid[o] {
			t.Errorf("reopened at %d, inside a line (opens %v)", o, src.opens)
		}
	}
	if len(src.opens) != 3 {
		t.Errorf("the source was opened %d times; the test wants reconnects", len(src.opens))
	}
}

func TestTailStartsAtOffset(t *testing.T) {
	src := &flakySource{data: []byte("a\nbb\nccc\n")}
	var got []gotLine
	tail := Tail{Open: src.open}
	off, err := tail.Run(testCtx(t), 5, func(l []byte, next int64) error {
		got = append(got, gotLine{string(l), next})
		return nil
	})
	if want := []gotLine{{"ccc", 9}}; !reflect.DeepEqual(got, want) {
		t.Fatalf("lines %v, want %v", got, want)
	}
	if off != 9 || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("Run = %d, %v; want the stream's end as the error", off, err)
	}
}

// A partial last line is not delivered; the next Run resumes at its start.
func TestTailPartialLastLine(t *testing.T) {
	src := &flakySource{data: []byte("a\nbb\ncc")}
	var got []string
	fn := func(l []byte, _ int64) error { got = append(got, string(l)); return nil }
	tail := Tail{Open: src.open}
	off, err := tail.Run(testCtx(t), 0, fn)
	if off != 5 || err == nil || !reflect.DeepEqual(got, []string{"a", "bb"}) {
		t.Fatalf("Run = %d, %v, lines %q", off, err, got)
	}
	src.data = append(src.data, "c\n"...)
	if off, _ = tail.Run(testCtx(t), off, fn); off != 9 || got[2] != "ccc" {
		t.Fatalf("resumed: %d, lines %q", off, got)
	}
}

func TestTailResumeDecides(t *testing.T) {
	src := &flakySource{data: []byte("a\nbbbbbb\n"), cut: 4}
	var calls []int64
	giveUp := errors.New("give up")
	tail := Tail{Open: src.open, Resume: func(_ context.Context, off int64, err error) error {
		calls = append(calls, off)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("Resume got %v", err)
		}
		if len(calls) == 3 {
			return giveUp
		}
		return nil
	}}
	off, err := tail.Run(testCtx(t), 0, func([]byte, int64) error { return nil })
	if !errors.Is(err, giveUp) || off != 2 || !reflect.DeepEqual(calls, []int64{2, 2, 2}) {
		t.Fatalf("Run = %d, %v; Resume calls %v", off, err, calls)
	}
}

func TestTailLineErrorsEndIt(t *testing.T) {
	src := &flakySource{data: []byte("a\nb\nc\n"), cut: 3}
	boom := errors.New("boom")
	resumed := 0
	tail := Tail{Open: src.open, Resume: func(context.Context, int64, error) error { resumed++; return nil }}
	off, err := tail.Run(testCtx(t), 0, func(l []byte, _ int64) error {
		if string(l) == "b" {
			return fmt.Errorf("wrapped: %w", boom)
		}
		return nil
	})
	if !errors.Is(err, boom) || off != 4 {
		t.Fatalf("Run = %d, %v", off, err)
	}
	if resumed != 1 {
		t.Errorf("resumed %d times, want once (the cut before b)", resumed)
	}
}

func TestTailOversizedLine(t *testing.T) {
	src := &flakySource{data: []byte("short\n" + strings.Repeat("x", 20) + "\nafter\n"), cut: 9}
	var got []string
	resumed := 0
	tail := Tail{Open: src.open, Max: 8, Resume: func(context.Context, int64, error) error { resumed++; return nil }}
	off, err := tail.Run(testCtx(t), 0, func(l []byte, _ int64) error { got = append(got, string(l)); return nil })
	if !errors.Is(err, ErrLineTooLong) || off != 6 || !reflect.DeepEqual(got, []string{"short"}) {
		t.Fatalf("Run = %d, %v, lines %q", off, err, got)
	}
	if !strings.Contains(err.Error(), "offset 6") {
		t.Errorf("the error does not say where: %v", err)
	}
	// The cut after "short" resumes; the long line does not.
	if resumed != 1 {
		t.Errorf("resumed %d times", resumed)
	}
	// A line of exactly Max bytes is fine.
	src = &flakySource{data: []byte("12345678\n")}
	tail = Tail{Open: src.open, Max: 8}
	if off, _ := tail.Run(testCtx(t), 0, func([]byte, int64) error { return ErrStop }); off != 9 {
		t.Errorf("a line of Max bytes: offset %d", off)
	}
}

// countingReader is an endless stream without a newline.
type countingReader struct{ n int }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'y'
	}
	r.n += len(p)
	return len(p), nil
}

// An endless line is refused after MaxLine bytes, not buffered whole.
func TestTailEndlessLineIsBounded(t *testing.T) {
	cr := &countingReader{}
	tail := Tail{Open: func(context.Context, int64) (io.ReadCloser, error) { return io.NopCloser(cr), nil }}
	_, err := tail.Run(testCtx(t), 0, func([]byte, int64) error { return nil })
	if !errors.Is(err, ErrLineTooLong) {
		t.Fatalf("Run = %v", err)
	}
	if cr.n > MaxLine+readSize {
		t.Errorf("read %d bytes of one line, limit %d", cr.n, MaxLine)
	}
}

// The buffer of a line that has not ended never grows past the limit:
// append's growth would overshoot it by up to a quarter, for every job the
// driver follows.
func TestSplitterPendingStaysWithinMax(t *testing.T) {
	tests := []struct {
		name       string
		max, chunk int
		line       int // the line's length before its newline
	}{
		{"a line of max bytes in reads", 1 << 20, readSize, 1 << 20},
		{"a line of max bytes in odd reads", 1<<20 + 3, 1000, 1<<20 + 3},
		{"one read the size of the line", 5 << 20, 5 << 20, 5 << 20},
		{"a short line", 1 << 20, readSize, 100},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got int
			s := &splitter{max: tt.max, fn: func(l []byte, _ int64) error { got = len(l); return nil }}
			data := append(bytes.Repeat([]byte("x"), tt.line), '\n')
			for len(data) > 0 {
				n := min(tt.chunk, len(data))
				if err := s.feed(data[:n]); err != nil {
					t.Fatal(err)
				}
				if cap(s.pending) > tt.max {
					t.Fatalf("pending buffer of %d bytes, max %d", cap(s.pending), tt.max)
				}
				data = data[n:]
			}
			if got != tt.line {
				t.Fatalf("line of %d bytes delivered, want %d", got, tt.line)
			}
		})
	}
}

// blockingReader blocks until its context ends.
type blockingReader struct{ ctx context.Context }

func (r blockingReader) Read([]byte) (int, error) {
	<-r.ctx.Done()
	return 0, r.ctx.Err()
}

func TestTailContextEnds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	tail := Tail{
		Open: func(ctx context.Context, _ int64) (io.ReadCloser, error) {
			return io.NopCloser(blockingReader{ctx}), nil
		},
		Resume: resumeAtOnce,
	}
	off, err := tail.Run(ctx, 42, func([]byte, int64) error { return nil })
	if off != 42 || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run = %d, %v", off, err)
	}
}

func TestTailOpenFailureResumes(t *testing.T) {
	src := &flakySource{data: []byte("a\n")}
	fails := 2
	open := func(ctx context.Context, off int64) (io.ReadCloser, error) {
		if fails > 0 {
			fails--
			return nil, errors.New("connection refused")
		}
		return src.open(ctx, off)
	}
	tail := Tail{Open: open, Resume: resumeAtOnce}
	off, err := tail.Run(testCtx(t), 0, func([]byte, int64) error { return ErrStop })
	if err != nil || off != 2 {
		t.Fatalf("Run = %d, %v", off, err)
	}
}
