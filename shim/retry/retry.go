// Package retry paces the shims' retries of services that do not answer
// (Nomad, a forge): a doubling backoff and a sleep that ends with its
// context.
package retry

import (
	"context"
	"time"
)

// Backoff doubles a delay from min up to max after each failure and
// starts over after a success.
type Backoff struct {
	min, max time.Duration
	cur      time.Duration
}

// NewBackoff returns a Backoff from min to max.
func NewBackoff(min, max time.Duration) *Backoff { return &Backoff{min: min, max: max} }

// Next returns the delay before the next attempt after a failure.
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.min
	} else {
		b.cur = min(2*b.cur, b.max)
	}
	return b.cur
}

// Reset starts over after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx ends; it reports whether d passed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
