package nomad

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// followRetry is how long Follow waits before opening the stream again:
// the events file does not exist until the driver has booted the VM, and
// a client restart cuts the stream.
var followRetry = time.Second

// For its first fastFollowFor, Follow reads the events file every
// fastFollowEvery with Nomad's read-at API instead of its file stream. The
// stream notices a file growing only every 250 ms and sends what it read
// every 200 ms: up to half a second before a user sees the first step, a
// third of a warm start. The window covers a boot and the first steps; the
// stream, which waits on the client instead of polling, takes over after it.
var (
	fastFollowFor   = 30 * time.Second
	fastFollowEvery = 100 * time.Millisecond
)

// Follow streams the job's events file from byte offset from, calling fn
// with each complete line and the offset just past it. It returns nil when
// fn returns contract.ErrStop, fn's other errors, contract.ErrLineTooLong,
// or ctx's error once ctx ends. A stream that breaks (the file is not
// there yet, the client restarted) is opened again at the last whole line.
func (c *Client) Follow(ctx context.Context, st Status, from int64, fn func(line []byte, next int64) error) error {
	if st.AllocID == "" {
		return errors.New("follow: the job has no allocation yet")
	}
	alloc := &api.Allocation{ID: st.AllocID, NodeID: st.NodeID}
	tail := contract.Tail{
		Open: pollFirst(c.readEvents(alloc), c.eventsStream(alloc), time.Now().Add(fastFollowFor)),
		Resume: func(ctx context.Context, offset int64, err error) error {
			c.log().Debug("event stream interrupted; resuming", "alloc", alloc.ID, "offset", offset, "error", err)
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(followRetry):
				return nil
			}
		},
	}
	_, err := tail.Run(ctx, from, fn)
	return err
}

// eventsStream is the allocation's events file, through Nomad's file
// stream API, as a Tail source.
func (c *Client) eventsStream(alloc *api.Allocation) contract.Source {
	return func(ctx context.Context, offset int64) (io.ReadCloser, error) {
		ctx, cancel := context.WithCancel(ctx)
		stop := make(chan struct{})
		frames, errs := c.API.AllocFS().Stream(alloc, contract.EventsPath(contract.TaskName), api.OriginStart, offset,
			stop, (&api.QueryOptions{}).WithContext(ctx))
		return &frameReader{ctx: ctx, frames: frames, errs: errs, close: func() {
			cancel()
			close(stop)
			drain(frames)
		}}, nil
	}
}

// readEvents reads up to limit bytes of the allocation's events file from
// offset, through the server (the client's own address may not be
// reachable from a shim). It asks the file's size first and reads no
// further: Nomad's read-at answers a missing file with its error text as
// the body and a success status, which must not pass for events.
func (c *Client) readEvents(alloc *api.Allocation) readAt {
	path := contract.EventsPath(contract.TaskName)
	return func(ctx context.Context, offset int64, limit int) ([]byte, error) {
		info, _, err := c.API.AllocFS().Stat(alloc, path, (&api.QueryOptions{}).WithContext(ctx))
		if err != nil || info.Size <= offset {
			return nil, err
		}
		n := min(info.Size-offset, int64(limit))
		q := (&api.QueryOptions{Params: map[string]string{
			"path":   path,
			"offset": strconv.FormatInt(offset, 10),
			"limit":  strconv.FormatInt(n, 10),
		}}).WithContext(ctx)
		body, err := c.API.Raw().Response("/v1/client/fs/readat/"+url.PathEscape(alloc.ID), q)
		if err != nil {
			return nil, err
		}
		defer body.Close()
		data, err := io.ReadAll(io.LimitReader(body, n+1))
		if err != nil {
			return nil, err
		}
		if int64(len(data)) != n {
			return nil, fmt.Errorf("read-at gave %d bytes of the %d the events file has from offset %d", len(data), n, offset)
		}
		return data, nil
	}
}

// drain lets the api package's stream goroutine finish: it blocks sending
// a decoded frame until someone takes it.
func drain(frames <-chan *api.StreamFrame) {
	if frames == nil {
		return
	}
	go func() {
		for range frames {
		}
	}()
}

// frameReader reads the data of a file stream's frames. The api package
// reports a broken stream on its error channel and then closes the frame
// channel; the frames before the break are read first.
type frameReader struct {
	ctx    context.Context
	frames <-chan *api.StreamFrame
	errs   <-chan error
	err    error // the stream broke; returned once its frames are read
	data   []byte
	close  func()
}

func (r *frameReader) Read(p []byte) (int, error) {
	for len(r.data) == 0 {
		if r.frames == nil && r.err != nil {
			return 0, r.err
		}
		select {
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case err := <-r.errs:
			r.errs = nil
			r.err = fmt.Errorf("events file stream: %w", cmp.Or(err, io.EOF))
		case f, ok := <-r.frames:
			if !ok {
				r.frames, r.err = nil, cmp.Or(r.err, io.EOF)
				continue
			}
			if f.FileEvent != "" {
				return 0, fmt.Errorf("events file %s", f.FileEvent) // truncated or deleted: start over where we were
			}
			r.data = f.Data
		}
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

func (r *frameReader) Close() error {
	r.close()
	return nil
}
