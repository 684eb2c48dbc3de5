package jobrun

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/solstice-ci/solstice/internal/contract"
)

// heapWatch records the most live heap seen while a job is followed,
// sampled (after a collection) as the guest's stream is read and as
// events are rendered: what the driver holds because of what a guest
// sent, GC headroom aside.
type heapWatch struct {
	base, peak uint64
	unsampled  int // bytes read since the last sample
}

func newHeapWatch() *heapWatch {
	w := &heapWatch{}
	w.base = w.live()
	return w
}

func (w *heapWatch) live() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func (w *heapWatch) sample() {
	w.unsampled = 0
	if l := w.live(); l > w.base {
		w.peak = max(w.peak, l-w.base)
	}
}

// held is the peak live heap above where it started.
func (w *heapWatch) held() uint64 { return w.peak }

// hostileStream is a guest's event stream made up as it is read, so a
// stream of gigabytes costs the test nothing: chunk again and again,
// until size bytes.
type hostileStream struct {
	chunk []byte
	size  int64
	watch *heapWatch
	read  int64
	cur   []byte
}

func (s *hostileStream) Read(p []byte) (int, error) {
	if s.read >= s.size {
		return 0, io.EOF
	}
	if len(s.cur) == 0 {
		s.cur = s.chunk
	}
	n := copy(p, s.cur)
	n = int(min(int64(n), s.size-s.read))
	s.cur, s.read = s.cur[n:], s.read+int64(n)
	if s.watch.unsampled += n; s.watch.unsampled >= 1<<20 {
		s.watch.sample()
	}
	return n, nil
}

func (s *hostileStream) Close() error { return nil }

// sampledOut is the task's stdout, sampling the heap while a rendered
// event (and whatever was decoded for it) is live.
type sampledOut struct{ watch *heapWatch }

func (o sampledOut) Write(p []byte) (int, error) {
	if len(p) >= 4<<10 {
		o.watch.sample()
	}
	return len(p), nil
}

// logEvent is a log event whose line is n bytes of text.
func logEvent(n int) []byte {
	ev := contract.Event{Seq: 1, Type: contract.TypeLog, Step: contract.JobLevel, Line: strings.Repeat("a", n)}
	return contract.MarshalEvent(&ev)
}

func TestFollowHoldsBoundedMemory(t *testing.T) {
	const limit = 8 << 20 // a line longer is refused
	tests := []struct {
		name      string
		chunk     []byte // the guest sends again and again
		size      int64  // of the stream the guest offers
		maxEvents int64
		wantErr   string
		maxRead   int64  // the most of the stream the driver may read
		maxHeld   uint64 // the most live heap it may hold for it
	}{
		{
			name:    "2 GiB without a newline",
			chunk:   bytes.Repeat([]byte("a"), 1<<20),
			size:    2 << 30,
			wantErr: "line longer than the limit",
			maxRead: limit + 1<<20, maxHeld: limit + 1<<20,
		},
		{
			name:      "flood of agent-sized log lines",
			chunk:     logEvent(64 << 10),
			size:      1 << 40,
			maxEvents: 32 << 20,
			wantErr:   "exceeded max_events_size (33554432 bytes)",
			maxRead:   32<<20 + 1<<20, maxHeld: 1 << 20,
		},
		{
			name:      "events as long as a line may be",
			chunk:     logEvent(limit - 200),
			size:      1 << 40,
			maxEvents: 64 << 20,
			wantErr:   "exceeded max_events_size (67108864 bytes)",
			maxRead:   64<<20 + limit + 1<<20, maxHeld: limit + 1<<20,
		},
		{
			name:      "huge lines that are no events",
			chunk:     append(bytes.Repeat([]byte("{"), limit-1), '\n'),
			size:      1 << 40,
			maxEvents: 64 << 20,
			wantErr:   "exceeded max_events_size (67108864 bytes)",
			maxRead:   64<<20 + limit + 1<<20, maxHeld: limit + 1<<20,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newHeapWatch()
			g := &hostileStream{chunk: tt.chunk, size: tt.size, watch: w}
			r := &Runner{Log: hclog.NewNullLogger(), Events: filepath.Join(t.TempDir(), "events.jsonl"),
				Out: sampledOut{w}, MaxEvents: tt.maxEvents,
				open: func(context.Context, int64) (io.ReadCloser, error) { return g, nil }}
			code, err := r.Follow(t.Context(), nil)
			w.sample()
			t.Logf("read %d MiB of the stream, held at most %.1f MiB: %v", g.read>>20, float64(w.held())/(1<<20), err)
			if code != contract.ExitInfrastructure || err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("code %d, error %v; want %q", code, err, tt.wantErr)
			}
			if g.read > tt.maxRead {
				t.Errorf("read %d bytes of the stream, want at most %d", g.read, tt.maxRead)
			}
			if w.held() > tt.maxHeld {
				t.Errorf("held %d bytes of heap, want at most %d", w.held(), tt.maxHeld)
			}
		})
	}
}

// Lines too long to render still reach the events file byte for byte,
// short and long ones alike, and the job's end is still seen after them.
func TestFollowKeepsLongLines(t *testing.T) {
	summary := contract.Event{Seq: 3, Type: contract.TypeStepSummary, Step: 0, Markdown: strings.Repeat("<b>", 300<<10)}
	tests := []struct {
		name   string
		events []contract.Event
		shown  string // on the task's stdout
		hidden string // not on it
	}{
		{"short log line", []contract.Event{{Seq: 3, Type: contract.TypeLog, Step: 0, Line: "hello"}}, "hello\n", ""},
		{"log line written in two writes", []contract.Event{{Seq: 3, Type: contract.TypeLog, Step: 0, Line: strings.Repeat("b", maxCopied)}}, strings.Repeat("b", maxCopied) + "\n", ""},
		{"summary too long to decode", []contract.Event{summary}, "", "<b>"},
		{"forged log line too long to render", []contract.Event{{Seq: 3, Type: contract.TypeLog, Step: 0, Line: strings.Repeat("c", maxDecoded)}}, "", "ccc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs := append([]contract.Event{{Seq: 1, Type: contract.TypeJobStarted, Steps: 1}, {Seq: 2, Type: contract.TypeStepStarted, Step: 0, Name: "s"}}, tt.events...)
			evs = append(evs, contract.Event{Seq: 9, Type: contract.TypeJobFinished, Conclusion: contract.Success})
			var stream []byte
			for i := range evs {
				stream = contract.AppendEvent(stream, &evs[i])
			}
			var out strings.Builder
			p := filepath.Join(t.TempDir(), "events.jsonl")
			r := &Runner{Log: hclog.NewNullLogger(), Events: p, Out: &out,
				open: func(context.Context, int64) (io.ReadCloser, error) {
					return io.NopCloser(bytes.NewReader(stream)), nil
				}}
			code, err := r.Follow(t.Context(), nil)
			if code != contract.ExitSuccess || err != nil {
				t.Fatalf("code %d, error %v", code, err)
			}
			if got, _ := os.ReadFile(p); !bytes.Equal(got, stream) {
				t.Errorf("events file of %d bytes differs from the %d bytes sent", len(got), len(stream))
			}
			if !strings.Contains(out.String(), tt.shown) || (tt.hidden != "" && strings.Contains(out.String(), tt.hidden)) {
				t.Errorf("stdout %.200q: want %.40q shown and %q not", out.String(), tt.shown, tt.hidden)
			}
			if !strings.Contains(out.String(), "==> job success") {
				t.Errorf("stdout %.200q lacks the job's end", out.String())
			}
		})
	}
}
