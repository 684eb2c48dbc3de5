package plugin

import (
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/driver/image"
)

// A first download of a catalog image can take hours; the user follows it
// in the task's events (nomad alloc status, solstice run). Nomad keeps only
// a task's last ten events, so progress is reported in steps, not on
// every report: at each further tenth of the image (at most once a second)
// and at least every downloadQuiet, so a slow download never goes silent;
// the end of a download is always reported.
const (
	downloadStep  = 10 // percent
	downloadGap   = time.Second
	downloadQuiet = 30 * time.Second
)

// MsgDownloading is the task event a download's progress is reported in.
const MsgDownloading = "Downloading image"

// downloadReporter decides which progress reports become task events.
type downloadReporter struct {
	label string
	emit  func(msg string, annotations map[string]string)
	now   func() time.Time

	mu       sync.Mutex
	lastAt   time.Time
	lastPct  int64
	reported bool
}

func (r *downloadReporter) report(p image.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	t := r.now()
	pct := int64(-1)
	if p.Total > 0 {
		pct = p.Done * 100 / p.Total
	}
	since := t.Sub(r.lastAt)
	finished := pct == 100 && r.lastPct < 100 // always said, however soon
	due := !r.reported || finished || since >= downloadQuiet ||
		(pct >= 0 && since >= downloadGap && pct >= r.lastPct+downloadStep)
	if !due {
		return
	}
	r.reported, r.lastAt, r.lastPct = true, t, pct
	r.emit(MsgDownloading+": "+describeProgress(r.label, p), map[string]string{
		"image":       r.label,
		"bytes_done":  strconv.FormatInt(p.Done, 10),
		"bytes_total": strconv.FormatInt(p.Total, 10),
	})
}

// describeProgress reads like "solstice-test: 12.5 MiB of 79.6 MiB (15%),
// 2.1 MiB/s".
func describeProgress(label string, p image.Progress) string {
	s := label + ": " + mib(p.Done)
	if p.Total > 0 {
		s += fmt.Sprintf(" of %s (%d%%)", mib(p.Total), p.Done*100/p.Total)
	}
	return s + ", " + mib(int64(p.Rate)) + "/s"
}

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
