// Package eventstest feeds raw events.jsonl lines to the shims' followers
// in unit tests, as Nomad's file stream would, so a fake job can hand over
// forged and malformed lines as well as well-formed ones.
package eventstest

import (
	"context"
	"errors"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Feed hands each line (without its newline) to fn with the offset after
// it, counting from off, then holds the stream open until ctx ends, as a
// live job's stream does. fn returning contract.ErrStop ends it cleanly.
func Feed(ctx context.Context, off int64, lines []string, fn func([]byte, int64) error) error {
	for _, l := range lines {
		off += int64(len(l) + 1)
		if err := fn([]byte(l), off); err != nil {
			if errors.Is(err, contract.ErrStop) {
				return nil
			}
			return err
		}
	}
	<-ctx.Done()
	return ctx.Err()
}
