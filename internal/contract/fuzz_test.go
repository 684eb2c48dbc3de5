package contract

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets for the two contracts a hostile party can write: the events
// file (the guest writes it) and the plan (the guest reads it, and the
// shims build it from forge input). `go test` runs the seeds below and
// those in testdata/fuzz; `make fuzz` runs the targets for longer.

// maxFuzzInput bounds fuzzed inputs. Real callers bound theirs: a plan is
// a Nomad dispatch payload (16 KiB, see PayloadLimit) and events arrive
// one line at a time. Bigger inputs only slow the fuzzer down.
const maxFuzzInput = 64 << 10

var eventSeeds = []string{
	`{"seq":1,"time":"2026-01-02T14:04:05.120000000Z","type":"job_started","job":{"id":"build","name":"build (amd64)","workflow":"CI"},"agent":"v1","steps":3}`,
	`{"seq":2,"time":"2026-01-02T14:04:05.120000000Z","type":"step_started","step":0,"id":"v","name":"Compute"}`,
	`{"seq":3,"time":"2026-01-02T14:04:05.120000000Z","type":"log","step":-1,"stream":"system","line":""}`,
	`{"seq":4,"time":"2026-01-02T14:04:05.120000000Z","type":"log","step":1,"stream":"system","line":"Error: a.go:3: boom","kind":"error","annotation":{"level":"error","message":"boom","file":"a.go","line":3}}`,
	`{"seq":5,"time":"2026-01-02T14:04:05.120000000Z","type":"step_finished","step":1,"outcome":"failure","conclusion":"success","exit_code":2,"duration_ms":0}`,
	`{"seq":6,"time":"2026-01-02T14:04:05.120000000Z","type":"step_summary","step":1,"markdown":"# Title\n| a |"}`,
	`{"seq":7,"time":"2026-01-02T14:04:05.120000000Z","type":"outputs","outputs":{"a":"1","b":"2"}}`,
	`{"seq":8,"time":"2026-01-02T14:04:05.120000000+02:00","type":"job_finished","conclusion":"cancelled","duration_ms":1500}`,
	`{"seq":9,"time":"2026-01-02T14:04:05Z","type":"infra_error","message":"no disk"}`,
	`{"seq":10,"time":"2026-01-02T14:04:05.120000000Z","type":"log","step":0,"stream":"stdout","line":"q\"b\\\t\u0001é\ufffd\ufffd\u2028"}`,
	`{"seq":11,"type":"log","line":"\ud800 lone surrogate"}`,
	`{"type":"log"}`,
	`[1]`,
}

// FuzzDecodeEvent decodes one line as the driver and the shims do. A line
// that decodes must survive MarshalEvent (the driver re-encodes events it
// writes itself, and a shim may pass them on), and the encoding must be
// canonical: decoding it and encoding again gives the same bytes.
func FuzzDecodeEvent(f *testing.F) {
	for _, s := range eventSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		if len(line) > maxFuzzInput {
			return
		}
		ev, err := DecodeEvent(line)
		if err != nil {
			return
		}
		if ev.Seq <= 0 || ev.Type == "" {
			t.Fatalf("decoded an event without seq or type: %+v", ev)
		}
		out := MarshalEvent(&ev)
		if bytes.Count(out, []byte("\n")) != 1 || out[len(out)-1] != '\n' {
			t.Fatalf("MarshalEvent wrote other than one line: %q", out)
		}
		back, err := DecodeEvent(out)
		if err != nil {
			t.Fatalf("MarshalEvent wrote a line DecodeEvent rejects: %v\nin:  %q\nout: %q", err, line, out)
		}
		if again := MarshalEvent(&back); !bytes.Equal(again, out) {
			t.Fatalf("encoding is not canonical:\nfirst:  %q\nsecond: %q", out, again)
		}
		if back.Seq != ev.Seq || back.Type != ev.Type || !back.Time.Equal(ev.Time) || back.Terminal() != ev.Terminal() {
			t.Fatalf("round trip changed the event:\n%+v\n%+v", ev, back)
		}
	})
}

// FuzzFollowLines tails an events file of fuzzed bytes. It checks that
// FollowLines delivers exactly the file's complete lines, in order, with
// the right resume offsets, stops after a terminal event, fails on the
// first line that does not decode, and that resuming from any delivered
// offset sees the same rest of the stream.
func FuzzFollowLines(f *testing.F) {
	var stream []byte
	for _, s := range eventSeeds[:7] {
		stream = append(append(stream, s...), '\n')
	}
	f.Add(stream, uint16(0))
	f.Add(append(append([]byte(nil), stream...), eventSeeds[7]+"\n"...), uint16(3))
	f.Add(append(append([]byte(nil), stream...), eventSeeds[8][:20]...), uint16(1)) // a line being written
	f.Add([]byte(eventSeeds[8]+"\n"+eventSeeds[0]+"\n"), uint16(0))                 // data after the end
	f.Add([]byte(eventSeeds[0]+"\nnot json\n"+eventSeeds[1]+"\n"), uint16(0))
	f.Add([]byte("\n\n"), uint16(0))
	f.Add([]byte{}, uint16(7))

	path := filepath.Join(f.TempDir(), "events.jsonl")
	f.Fuzz(func(t *testing.T, data []byte, pick uint16) {
		if len(data) > maxFuzzInput {
			return
		}
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		want := expectedLines(data, 0)
		got := follow(t, path, 0)
		checkFollow(t, 0, got, want)
		if len(got.lines) == 0 {
			return
		}
		// Resume after one of the delivered events, as a reader that
		// restarts does.
		k := int(pick) % len(got.lines)
		from := got.next[k]
		checkFollow(t, from, follow(t, path, from), expectedLines(data, from))
	})
}

// followed is what one FollowLines call delivered and returned.
type followed struct {
	lines [][]byte
	next  []int64
	err   error
}

// follow runs FollowLines with a context that is already done, so it
// delivers what the file holds and returns at once.
func follow(t *testing.T, path string, from int64) followed {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var got followed
	got.err = FollowLines(ctx, path, from, func(line []byte, ev Event, next int64) error {
		if _, err := DecodeEvent(line); err != nil {
			t.Fatalf("delivered a line that does not decode: %q", line)
		}
		got.lines = append(got.lines, bytes.Clone(line))
		got.next = append(got.next, next)
		return nil
	})
	return got
}

// expected is what FollowLines should do with data from offset from.
type expected struct {
	lines  [][]byte
	next   []int64
	ended  bool // a terminal event was delivered: nil error
	broken bool // a complete line does not decode: a decoding error
}

// expectedLines splits data the way the tailer must, independently of it.
// A resume offset just after a terminal event ends the stream at once.
func expectedLines(data []byte, from int64) expected {
	var want expected
	if from > 0 {
		start := bytes.LastIndexByte(data[:from-1], '\n') + 1
		if ev, err := DecodeEvent(data[start : from-1]); err == nil && ev.Terminal() {
			want.ended = true
			return want
		}
	}
	off := from
	rest := data[from:]
	for {
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return want
		}
		line := rest[:i]
		ev, err := DecodeEvent(line)
		if err != nil {
			want.broken = true
			return want
		}
		off += int64(i + 1)
		want.lines = append(want.lines, line)
		want.next = append(want.next, off)
		rest = rest[i+1:]
		if ev.Terminal() {
			want.ended = true
			return want
		}
	}
}

func checkFollow(t *testing.T, from int64, got followed, want expected) {
	t.Helper()
	if len(got.lines) != len(want.lines) {
		t.Fatalf("from %d: delivered %d lines, want %d (error %v)", from, len(got.lines), len(want.lines), got.err)
	}
	for i := range got.lines {
		if !bytes.Equal(got.lines[i], want.lines[i]) || got.next[i] != want.next[i] {
			t.Fatalf("from %d: line %d is %q next %d, want %q next %d", from, i, got.lines[i], got.next[i], want.lines[i], want.next[i])
		}
	}
	switch {
	case want.ended && got.err != nil:
		t.Fatalf("from %d: the stream ended but FollowLines returned %v", from, got.err)
	case want.broken && (got.err == nil || errors.Is(got.err, context.Canceled)):
		t.Fatalf("from %d: a line does not decode but FollowLines returned %v", from, got.err)
	case !want.ended && !want.broken && !errors.Is(got.err, context.Canceled):
		t.Fatalf("from %d: the stream has not ended but FollowLines returned %v", from, got.err)
	}
}

// FuzzDecodePlan decodes a plan as the guest agent does (gzip or plain).
// A plan that decodes is valid, and encoding it (both ways) and decoding
// again gives the same plan.
func FuzzDecodePlan(f *testing.F) {
	var packed bytes.Buffer
	zw := gzip.NewWriter(&packed)
	zw.Write([]byte(example))
	zw.Close()
	f.Add([]byte(example))
	f.Add(packed.Bytes())
	f.Add([]byte(`{"version":1,"job":{"id":"j"},"steps":[{"run":"true"}]}`))
	f.Add([]byte(`{"version":1,"job":{"id":"j"},"env":[{"name":"N","value":3.5e2}],"steps":[{"run":"x","timeout-minutes":"${{ 1 }}","continue-on-error":true,"env":{"A":false}}]}`))
	f.Add([]byte(`{"version":1,"job":{"id":"j"},"contexts":{"github":{"event":{}},"matrix":null},"secrets":["A"],"steps":[{"uses":"actions/checkout@v4","with":{"repository":"o/r","fetch-depth":0}}]}`))
	f.Add([]byte(`{"version":1,"job":{"id":"j"},"steps":[{"kdl":{"path":"w.kdl","job":"b"}}],"checkout":{"bundle":"repo.bundle"}}`))
	f.Add([]byte("\x1f\x8b"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		p, err := DecodePlanAuto(bytes.NewReader(data))
		if err != nil {
			return
		}
		if err := p.Validate(); err != nil {
			t.Fatalf("DecodePlanAuto returned a plan that does not validate: %v", err)
		}
		var plain, packed bytes.Buffer
		if err := EncodePlan(&plain, p); err != nil {
			t.Fatalf("encode a decoded plan: %v", err)
		}
		if err := EncodePlanCompressed(&packed, p); err != nil {
			t.Fatalf("compress a decoded plan: %v", err)
		}
		for name, enc := range map[string][]byte{"plain": plain.Bytes(), "gzip": packed.Bytes()} {
			back, err := DecodePlanAuto(bytes.NewReader(enc))
			if err != nil {
				t.Fatalf("%s: an encoded plan does not decode: %v\n%s", name, err, plain.Bytes())
			}
			var again bytes.Buffer
			if err := EncodePlan(&again, back); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again.Bytes(), plain.Bytes()) {
				t.Fatalf("%s: round trip changed the plan:\n%s\n%s", name, plain.Bytes(), again.Bytes())
			}
		}
	})
}
