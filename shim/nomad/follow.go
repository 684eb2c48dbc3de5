package nomad

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/hashicorp/nomad/api"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Follow streams the job's events file from byte offset from, calling fn
// with each complete line and the offset just past it. It returns when fn
// returns contract.ErrStop (nil is returned then), when ctx ends, or on an
// error. A stream cut by a client restart is resumed from the last whole
// line.
func (c *Client) Follow(ctx context.Context, st Status, from int64, fn func(line []byte, next int64) error) error {
	if st.AllocID == "" {
		return fmt.Errorf("follow: the job has no allocation yet")
	}
	alloc := &api.Allocation{ID: st.AllocID, NodeID: st.NodeID}
	for {
		next, err := c.followOnce(ctx, alloc, from, fn)
		if errors.Is(err, contract.ErrStop) {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log().Debug("event stream interrupted; resuming", "alloc", alloc.ID, "offset", next, "error", err)
		from = next
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (c *Client) followOnce(ctx context.Context, alloc *api.Allocation, from int64, fn func([]byte, int64) error) (int64, error) {
	if err := c.waitForFile(ctx, alloc); err != nil {
		return from, err
	}
	cancel := make(chan struct{})
	defer close(cancel)
	frames, errs := c.API.AllocFS().Stream(alloc, contract.EventsPath(contract.TaskName), api.OriginStart, from, cancel, (&api.QueryOptions{}).WithContext(ctx))
	var pending []byte
	offset := from
	for {
		select {
		case <-ctx.Done():
			return offset, ctx.Err()
		case err := <-errs:
			if err == nil || errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return offset, err
		case f, ok := <-frames:
			if !ok {
				return offset, io.ErrUnexpectedEOF
			}
			if f.FileEvent != "" {
				return offset, fmt.Errorf("events file %s", f.FileEvent)
			}
			pending = append(pending, f.Data...)
			var err error
			if pending, offset, err = deliver(pending, offset, fn); err != nil {
				return offset, err
			}
		}
	}
}

// deliver hands every complete line in buf to fn and returns the rest.
func deliver(buf []byte, offset int64, fn func([]byte, int64) error) ([]byte, int64, error) {
	for {
		i := bytes.IndexByte(buf, '\n')
		if i < 0 {
			return buf, offset, nil
		}
		line := buf[:i]
		offset += int64(i + 1)
		if err := fn(line, offset); err != nil {
			return nil, offset, err
		}
		buf = buf[i+1:]
	}
}

// waitForFile waits until the driver has created the events file: a stream
// of a missing file fails at once.
func (c *Client) waitForFile(ctx context.Context, alloc *api.Allocation) error {
	for {
		_, _, err := c.API.AllocFS().Stat(alloc, contract.EventsPath(contract.TaskName), (&api.QueryOptions{}).WithContext(ctx))
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}
