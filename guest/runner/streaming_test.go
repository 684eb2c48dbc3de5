package runner

import (
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/guest/events"
	"github.com/solstice-ci/solstice/internal/contract"
)

func TestOutputEncodings(t *testing.T) {
	r := runJob(t, newPlan(
		runStep(`printf 'bad \377\376 bytes\n'; printf '10%%\r50%%\r100%%\n'; printf 'crlf\r\n'; printf 'no newline at end'`),
	))
	got := r.lines(0, contract.Stdout)
	want := []string{"bad \ufffd\ufffd bytes", "100%", "crlf", "no newline at end"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLongLine(t *testing.T) {
	r := runJob(t, newPlan(runStep(`head -c 1000000 /dev/zero | tr '\0' a; echo; echo next`)))
	lines := r.lines(0, contract.Stdout)
	total := 0
	for _, l := range lines[:len(lines)-1] {
		if len(l) > events.MaxLine {
			t.Fatalf("piece of %d bytes", len(l))
		}
		total += len(l)
	}
	if total != 1000000 || lines[len(lines)-1] != "next" || len(lines) != 17 {
		t.Errorf("%d pieces, %d bytes, last %q", len(lines), total, lines[len(lines)-1])
	}
}

// 100 MB of output streams through with bounded memory.
func TestHugeOutputBoundedMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB")
	}
	var peak atomic.Uint64
	stop := make(chan struct{})
	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	go func() {
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	// 100,000 lines of 1,000 bytes, then 10 MB without a newline.
	r := runJob(t, newPlan(runStep(`yes "$(head -c 999 /dev/zero | tr '\0' x)" | head -c 100000000; head -c 10000000 /dev/zero | tr '\0' y`)),
		func(s *setup) { s.after = func() { close(stop) } })
	r.expect(0, contract.Success, contract.Success)
	var n, bytes int
	for _, ev := range r.events {
		if ev.Type == contract.TypeLog && ev.Stream == contract.Stdout {
			n++
			bytes += len(ev.Line)
		}
	}
	if n != 100000+153 || bytes != 99900000+10000000 {
		t.Errorf("%d lines, %d bytes", n, bytes)
	}
	grown := peak.Load() - min(peak.Load(), base.HeapInuse)
	t.Logf("heap grew by %d MiB at most", grown>>20)
	if grown > 48<<20 {
		t.Errorf("heap grew by %d MiB while streaming 110 MB", grown>>20)
	}
}
