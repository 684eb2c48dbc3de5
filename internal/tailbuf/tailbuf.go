// Package tailbuf keeps the last bytes of a stream a guest writes: what a
// guest prints is hostile and may be endless, and its end is what tells
// why something stopped.
package tailbuf

import (
	"bytes"
	"strings"
	"sync"
)

// Buffer is an io.Writer that keeps the last Max bytes written to it and
// takes everything (a writer that failed would stall the stream). It is
// safe for concurrent use.
type Buffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// New returns a Buffer that keeps the last max bytes.
func New(max int) *Buffer { return &Buffer{max: max} }

func (t *Buffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	if len(p) > t.max {
		p = p[len(p)-t.max:]
	}
	if over := len(t.b) + len(p) - t.max; over > 0 {
		t.b = append(t.b[:0], t.b[over:]...)
	}
	t.b = append(t.b, p...)
	return n, nil
}

// Bytes is a copy of what is kept.
func (t *Buffer) Bytes() []byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	return bytes.Clone(t.b)
}

// String is what is kept as trimmed, valid UTF-8, for a message.
func (t *Buffer) String() string {
	return strings.TrimSpace(strings.ToValidUTF8(string(t.Bytes()), "?"))
}
