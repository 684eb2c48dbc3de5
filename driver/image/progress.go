package image

import (
	"sync"
	"time"
)

// Progress is how far an image download has come.
type Progress struct {
	Done  int64   // bytes of the image now on disk (a resumed part included)
	Total int64   // the image's size; 0 when the server did not say
	Rate  float64 // bytes per second received by this download
}

// progressEvery is how often a download reports; the driver decides what
// of it reaches the user.
const progressEvery = 250 * time.Millisecond

// watchers fan a fetch's progress out to every task waiting for it: the
// one that started the fetch and any that joined it.
type watchers struct {
	mu   sync.Mutex
	next int
	fns  map[int]func(Progress)
}

// add registers fn until the returned func is called: a task that stopped
// waiting (its start was cancelled) hears no more of a fetch that goes on.
func (w *watchers) add(fn func(Progress)) (remove func()) {
	if fn == nil {
		return func() {}
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fns == nil {
		w.fns = map[int]func(Progress){}
	}
	id := w.next
	w.next++
	w.fns[id] = fn
	return func() {
		w.mu.Lock()
		delete(w.fns, id)
		w.mu.Unlock()
	}
}

func (w *watchers) report(p Progress) {
	w.mu.Lock()
	fns := make([]func(Progress), 0, len(w.fns))
	for _, fn := range w.fns {
		fns = append(fns, fn)
	}
	w.mu.Unlock()
	for _, fn := range fns {
		fn(p)
	}
}

// counter counts the bytes written through it and reports them at most
// every progressEvery, and once more at the end (see flush).
type counter struct {
	report      func(Progress)
	have, total int64 // bytes before this download; the whole size
	n           int64
	start, last time.Time
	now         func() time.Time
}

func newCounter(report func(Progress), have, total int64) *counter {
	t := time.Now()
	return &counter{report: report, have: have, total: total, start: t, last: t, now: time.Now}
}

func (c *counter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	if t := c.now(); t.Sub(c.last) >= progressEvery {
		c.last = t
		c.report(c.progress(t))
	}
	return len(p), nil
}

func (c *counter) flush() { c.report(c.progress(c.now())) }

func (c *counter) progress(t time.Time) Progress {
	p := Progress{Done: c.have + c.n, Total: c.total}
	if d := t.Sub(c.start).Seconds(); d > 0 {
		p.Rate = float64(c.n) / d
	}
	return p
}
