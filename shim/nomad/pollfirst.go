package nomad

import (
	"context"
	"io"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// readAt reads up to limit bytes of a file from offset; an error or no
// bytes both mean there is nothing new to read yet.
type readAt func(ctx context.Context, offset int64, limit int) ([]byte, error)

// pollFirst is a Source that polls read every fastFollowEvery until the
// deadline, then opens stream where the polls got to.
func pollFirst(read readAt, stream contract.Source, until time.Time) contract.Source {
	return func(ctx context.Context, offset int64) (io.ReadCloser, error) {
		if !time.Now().Before(until) {
			return stream(ctx, offset)
		}
		return &polling{ctx: ctx, read: read, stream: stream, off: offset, until: until}, nil
	}
}

// polling reads a file by polling, and by a stream once the polling
// window has passed.
type polling struct {
	ctx    context.Context
	read   readAt
	stream contract.Source
	off    int64
	until  time.Time
	rest   io.ReadCloser // the stream, once opened
}

// pollChunk bounds one poll's read; the tail asks for no more anyway.
const pollChunk = 64 << 10

func (p *polling) Read(b []byte) (int, error) {
	for p.rest == nil {
		if len(b) == 0 {
			return 0, nil
		}
		data, err := p.read(p.ctx, p.off, min(len(b), pollChunk))
		if err == nil && len(data) > 0 {
			n := copy(b, data) // data is at most len(b) long
			p.off += int64(n)
			return n, nil
		}
		if !time.Now().Before(p.until) {
			if p.rest, err = p.stream(p.ctx, p.off); err != nil {
				return 0, err
			}
			break
		}
		select {
		case <-p.ctx.Done():
			return 0, p.ctx.Err()
		case <-time.After(fastFollowEvery):
		}
	}
	return p.rest.Read(b)
}

func (p *polling) Close() error {
	if p.rest != nil {
		return p.rest.Close()
	}
	return nil
}
