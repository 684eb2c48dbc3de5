package events

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/guest/mask"
	"github.com/solstice-ci/solstice/internal/contract"
)

func fixedClock(t *testing.T) {
	t.Helper()
	old := now
	now = func() time.Time { return time.Date(2026, 1, 2, 15, 4, 5, 120000000, time.FixedZone("X", 3600)) }
	t.Cleanup(func() { now = old })
}

func newWriter(t *testing.T, m *mask.Masker) (*Writer, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "events.jsonl")
	w, err := Create(path, nil, m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w, path
}

func readEvents(t *testing.T, path string) []contract.Event {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []contract.Event
	for _, line := range bytes.SplitAfter(data, []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		ev, err := contract.DecodeEvent(line)
		if err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	return out
}

func TestWriterSeqConcurrent(t *testing.T) {
	w, path := newWriter(t, nil)
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				if _, err := w.Emit(contract.Event{Type: contract.TypeLog, Stream: contract.Stdout, Line: "x"}); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	evs := readEvents(t, path)
	if len(evs) != 1600 {
		t.Fatalf("%d events", len(evs))
	}
	var last time.Time
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d", i, ev.Seq)
		}
		if ev.Time.Before(last) {
			t.Fatalf("time went backwards at seq %d", ev.Seq)
		}
		last = ev.Time
	}
	if fi, _ := os.Stat(path); fi.Size() != w.Offset() {
		t.Errorf("Offset %d, file %d", w.Offset(), fi.Size())
	}
}

func TestWriterTimeFormat(t *testing.T) {
	fixedClock(t)
	w, path := newWriter(t, nil)
	w.Emit(contract.Event{Type: contract.TypeJobStarted, Job: &contract.Job{ID: "j"}})
	data, _ := os.ReadFile(path)
	if !regexp.MustCompile(`"time":"2026-01-02T14:04:05\.120000000Z"`).Match(data) {
		t.Errorf("time not UTC with 9 digits: %s", data)
	}
}

func TestWriterMasks(t *testing.T) {
	m := mask.New()
	m.AddSecret("hunter2")
	w, path := newWriter(t, m)
	w.Emit(contract.Event{Type: contract.TypeJobStarted, Job: &contract.Job{ID: "j", Name: "job hunter2"}})
	w.Emit(contract.Event{Type: contract.TypeStepStarted, Name: "step hunter2"})
	w.Emit(contract.Event{Type: contract.TypeLog, Stream: contract.Stdout, Line: "pw=hunter2", Annotation: &contract.Annotation{Level: "error", Message: "hunter2", Title: "hunter2", File: "hunter2.c"}})
	w.Emit(contract.Event{Type: contract.TypeStepFinished, Outcome: contract.Failure, Conclusion: contract.Failure, Reason: "hunter2"})
	w.Emit(contract.Event{Type: contract.TypeStepSummary, Markdown: "# hunter2"})
	w.Emit(contract.Event{Type: contract.TypeOutputs, Outputs: map[string]string{"o": "hunter2"}})
	w.Emit(contract.Event{Type: contract.TypeInfraError, Message: "hunter2"})
	data, _ := os.ReadFile(path)
	if bytes.Contains(data, []byte("hunter2")) {
		t.Errorf("secret in events:\n%s", data)
	}
	if n := bytes.Count(data, []byte("***")); n != 10 {
		t.Errorf("%d masks, want 10:\n%s", n, data)
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) { f.n++; return 0, errors.New("broken pipe") }

func TestWriterEchoFailureKeepsFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	echo := &failingWriter{}
	w, err := Create(path, echo, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i := 0; i < 3; i++ {
		if _, err := w.Emit(contract.Event{Type: contract.TypeLog, Line: "x"}); err != nil {
			t.Fatal(err)
		}
	}
	if echo.n != 1 {
		t.Errorf("echo written %d times after failing", echo.n)
	}
	if n := len(readEvents(t, path)); n != 3 {
		t.Errorf("%d events in file", n)
	}
}

func TestCreateRefusesExisting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "events.jsonl")
	os.WriteFile(path, []byte("x"), 0o644)
	if _, err := Create(path, nil, nil); err == nil {
		t.Error("Create overwrote an existing stream")
	}
}

// collect runs input through a Splitter, writing it in chunks of size n.
func collect(input string, n, limit int, m *mask.Masker) []string {
	var out []string
	s := NewSplitter(limit, m, func(text string, whole bool) {
		if !whole {
			text = "~" + text // mark pieces
		}
		out = append(out, text)
	})
	for len(input) > 0 {
		k := min(n, len(input))
		s.Write([]byte(input[:k]))
		input = input[k:]
	}
	s.Close()
	return out
}

func TestSplitter(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		limit int
		want  []string
	}{
		{"lines", "a\nb\n", 0, []string{"a", "b"}},
		{"unterminated last line", "a\nb", 0, []string{"a", "b"}},
		{"empty lines", "\n\nx\n", 0, []string{"", "", "x"}},
		{"crlf", "a\r\nb\r\n", 0, []string{"a", "b"}},
		{"progress bar keeps final state", "10%\r50%\r100%\n", 0, []string{"100%"}},
		{"progress then crlf", "10%\r100%\r\ndone\n", 0, []string{"100%", "done"}},
		{"trailing cr at eof", "working\r", 0, []string{"working"}},
		{"cr then eof text", "a\rb", 0, []string{"b"}},
		{"long line cut", "abcdefghij\n", 4, []string{"~abcd", "~efgh", "~ij"}},
		{"exact limit not cut", "abcd\n", 4, []string{"abcd"}},
		{"cr after piece", "abcdefgh\rxy\n", 4, []string{"~abcd", "~xy"}},
		{"no cut inside utf-8", "aé€x\n", 4, []string{"~aé", "~€x"}},
		{"nothing", "", 0, nil},
	}
	for _, tt := range tests {
		for _, chunk := range []int{1, 3, 1 << 20} {
			got := collect(tt.in, chunk, tt.limit, nil)
			if strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
				t.Errorf("%s (writes of %d): got %q, want %q", tt.name, chunk, got, tt.want)
			}
		}
	}
}

// A secret straddling the cut of a long line is still masked: the
// splitter moves the cut in front of it.
func TestSplitterNeverCutsSecrets(t *testing.T) {
	m := mask.New()
	m.AddSecret("SECRETVALUE")
	for offset := 0; offset < 20; offset++ {
		line := strings.Repeat("x", 40+offset) + "SECRETVALUE" + strings.Repeat("y", 50)
		for _, chunk := range []int{1, 7, 1000} {
			pieces := collect(line+"\n", chunk, 50, m)
			var masked []string
			for _, p := range pieces {
				masked = append(masked, m.Mask(strings.TrimPrefix(p, "~")))
			}
			joined := strings.Join(masked, "")
			if strings.Contains(joined, "SECRET") || strings.Contains(joined, "VALUE") || !strings.Contains(joined, "***") {
				t.Fatalf("offset %d chunk %d: pieces %q", offset, chunk, pieces)
			}
			for _, p := range pieces {
				if len(p)-1 > 50+len("SECRETVALUE") {
					t.Fatalf("piece of %d bytes", len(p))
				}
			}
		}
	}
}

func TestFollowResumesExactly(t *testing.T) {
	w, path := newWriter(t, nil)
	w.Emit(contract.Event{Type: contract.TypeJobStarted, Job: &contract.Job{ID: "j"}})
	for i := 0; i < 5; i++ {
		w.Emit(contract.Event{Type: contract.TypeLog, Stream: contract.Stdout, Line: strings.Repeat("z", i)})
	}
	mid := w.Offset()
	w.Emit(contract.Event{Type: contract.TypeLog, Stream: contract.Stdout, Line: "after"})

	var seqs []int64
	var offsets []int64
	done := make(chan error)
	go func() {
		done <- contract.Follow(context.Background(), path, 0, func(ev contract.Event, next int64) error {
			seqs = append(seqs, ev.Seq)
			offsets = append(offsets, next)
			return nil
		})
	}()
	time.Sleep(3 * contract.PollInterval)
	w.Emit(contract.Event{Type: contract.TypeJobFinished, Conclusion: contract.Success})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(seqs) != 8 || seqs[7] != 8 {
		t.Fatalf("seqs %v", seqs)
	}
	if offsets[5] != mid || offsets[7] != w.Offset() {
		t.Errorf("offsets %v, mid %d, end %d", offsets, mid, w.Offset())
	}

	// Resume from the middle: exactly the events after it.
	var resumed []int64
	var lines []string
	err := contract.FollowLines(context.Background(), path, mid, func(line []byte, ev contract.Event, next int64) error {
		resumed = append(resumed, ev.Seq)
		lines = append(lines, string(line))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(resumed) != 2 || resumed[0] != 7 {
		t.Errorf("resumed %v", resumed)
	}
	data, _ := os.ReadFile(path)
	if string(data[mid:]) != lines[0]+"\n"+lines[1]+"\n" {
		t.Errorf("lines not verbatim")
	}
}

func TestFollowWaitsForFileAndWholeLines(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "events.jsonl")
	got := make(chan contract.Event, 10)
	done := make(chan error)
	go func() {
		done <- contract.Follow(context.Background(), path, 0, func(ev contract.Event, next int64) error { got <- ev; return nil })
	}()
	time.Sleep(2 * contract.PollInterval)
	line := contract.MarshalEvent(&contract.Event{Seq: 1, Type: contract.TypeJobFinished, Conclusion: contract.Success})
	f, _ := os.Create(path)
	f.Write(line[:10]) // half a line: not an event yet
	time.Sleep(3 * contract.PollInterval)
	select {
	case ev := <-got:
		t.Fatalf("delivered a partial line: %+v", ev)
	default:
	}
	f.Write(line[10:])
	f.Close()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if ev := <-got; ev.Type != contract.TypeJobFinished {
		t.Errorf("got %+v", ev)
	}
}

func TestFollowContextDrainsFirst(t *testing.T) {
	w, path := newWriter(t, nil)
	w.Emit(contract.Event{Type: contract.TypeLog, Line: "a"})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var n int
	err := contract.Follow(ctx, path, 0, func(contract.Event, int64) error { n++; return nil })
	if !errors.Is(err, context.Canceled) || n != 1 {
		t.Errorf("err %v, %d events", err, n)
	}
	w.Emit(contract.Event{Type: contract.TypeInfraError, Message: "x"})
	if err := contract.Follow(ctx, path, 0, func(contract.Event, int64) error { return nil }); err != nil {
		t.Errorf("terminal event not seen before the cancelled context: %v", err)
	}
}

// peakHeap runs f while sampling the heap and returns the highest heap
// use seen above the starting point.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
				peak.Store(ms.HeapInuse - base)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f()
	close(stop)
	<-sampled
	return peak.Load()
}

// A 1 MB line and 20 MB without any newline stream through in 64 KiB
// pieces with memory bounded by a few pieces, and come out whole.
func TestLongLinesBoundedMemory(t *testing.T) {
	m := mask.New()
	m.AddSecret("s3cr3t-value")
	w, path := newWriter(t, m)
	var pieces, total int
	s := NewSplitter(0, m, func(text string, whole bool) {
		pieces++
		total += len(text)
		if len(text) > MaxLine+m.MaxLen() {
			t.Errorf("piece of %d bytes", len(text))
		}
		w.Emit(contract.Event{Type: contract.TypeLog, Stream: contract.Stdout, Line: text})
	})
	block := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	peak := peakHeap(func() {
		for i := 0; i < 16; i++ { // 1 MiB line
			s.Write(block)
		}
		s.Write([]byte("\n"))
		for i := 0; i < 320; i++ { // 20 MiB, no newline at all
			s.Write(block)
		}
		s.Close()
	})
	if total != 336*len(block) {
		t.Errorf("%d bytes came out, want %d", total, 336*len(block))
	}
	if pieces < 336 {
		t.Errorf("%d pieces", pieces)
	}
	if peak > 16<<20 {
		t.Errorf("heap grew by %d MiB", peak>>20)
	}
	if fi, _ := os.Stat(path); fi.Size() < 21<<20 {
		t.Errorf("events file only %d bytes", fi.Size())
	}
}

// Following again from the end of a finished stream returns at once, even
// when the last event is a long line.
func TestFollowFromTheEnd(t *testing.T) {
	w, path := newWriter(t, nil)
	w.Emit(contract.Event{Type: contract.TypeLog, Line: "x"})
	mid := w.Offset()
	w.Emit(contract.Event{Type: contract.TypeInfraError, Message: strings.Repeat("m", 300<<10)})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := 0
	if err := contract.Follow(ctx, path, w.Offset(), func(contract.Event, int64) error { n++; return nil }); err != nil || n != 0 {
		t.Errorf("from the end: %v, %d events", err, n)
	}
	if err := contract.Follow(ctx, path, mid, func(contract.Event, int64) error { n++; return nil }); err != nil || n != 1 {
		t.Errorf("from the middle: %v, %d events", err, n)
	}
	if err := contract.Follow(ctx, path, mid-3, func(contract.Event, int64) error { return nil }); err == nil {
		t.Error("an offset inside a line was accepted")
	}
}
