package nomad

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Follow through Nomad's file stream: the file is missing at first, then
// the stream breaks mid-line; every event arrives once, with its offset.
func TestFollowResumesThroughTheStreamAPI(t *testing.T) {
	streamOnly(t)
	f, c := newFakeNomad(t)
	data, ends := eventsFile(contract.TypeJobStarted, contract.TypeLog, contract.TypeLog, contract.TypeJobFinished)
	cut := ends[1] + 5 // inside the third event
	var mu sync.Mutex
	var opens []int64
	f.streams["alloc-1"] = func(w http.ResponseWriter, r *http.Request, offset int64) {
		mu.Lock()
		opens = append(opens, offset)
		n := len(opens)
		mu.Unlock()
		switch n {
		case 1: // the driver has not created the file yet
			http.Error(w, "file does not exist", http.StatusNotFound)
			return
		case 2:
			writeFrames(w, data[offset:cut], offset)
			return // the client restarted
		}
		writeFrames(w, data[offset:], offset)
		<-r.Context().Done() // follow=true: the stream stays open
	}
	got, _ := followAll(t, c, time.Now())
	if !reflect.DeepEqual(got, ends) {
		t.Errorf("offsets %v, want %v", got, ends)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int64{0, 0, ends[1]}; !reflect.DeepEqual(opens, want) {
		t.Errorf("the stream was opened at %v, want %v", opens, want)
	}
}

// streamOnly makes Follow use the file stream from the start, retrying
// it quickly.
func streamOnly(t *testing.T) {
	retry, window := followRetry, fastFollowFor
	followRetry, fastFollowFor = 10*time.Millisecond, 0
	t.Cleanup(func() { followRetry, fastFollowFor = retry, window })
}

// Follow polls the events file with the read-at API first: it is missing
// (which read-at answers with its error text as a success), then empty,
// then grows a line at a time; once the polling window has
// passed, the stream takes over where the polls got to. Every event
// arrives once, with its offset.
func TestFollowPollsFirstThenStreams(t *testing.T) {
	retry, window, every := followRetry, fastFollowFor, fastFollowEvery
	followRetry, fastFollowFor, fastFollowEvery = 10*time.Millisecond, 400*time.Millisecond, 5*time.Millisecond
	t.Cleanup(func() { followRetry, fastFollowFor, fastFollowEvery = retry, window, every })
	f, c := newFakeNomad(t)
	data, ends := eventsFile(contract.TypeJobStarted, contract.TypeStepStarted, contract.TypeLog, contract.TypeJobFinished)
	start := time.Now()
	polled := ends[1] // what the polls find: the file appears, then its first two lines
	var mu sync.Mutex
	var reads []string
	f.files["alloc-1"] = func() ([]byte, bool) {
		mu.Lock()
		defer mu.Unlock()
		reads = append(reads, "read")
		switch since := time.Since(start); {
		case since < 50*time.Millisecond: // the driver has not created it yet
			return nil, false
		case since < 100*time.Millisecond:
			return nil, true
		case since < 150*time.Millisecond:
			return data[:ends[0]], true
		}
		return data[:polled], true
	}
	var opens []int64
	f.streams["alloc-1"] = func(w http.ResponseWriter, r *http.Request, offset int64) {
		mu.Lock()
		opens = append(opens, offset)
		mu.Unlock()
		writeFrames(w, data[offset:], offset)
		<-r.Context().Done()
	}
	got, at := followAll(t, c, start)
	if !reflect.DeepEqual(got, ends) {
		t.Errorf("offsets %v, want %v", got, ends)
	}
	mu.Lock()
	defer mu.Unlock()
	if want := []int64{polled}; !reflect.DeepEqual(opens, want) {
		t.Errorf("the stream was opened at %v, want %v (after the polled lines)", opens, want)
	}
	if at[1] >= fastFollowFor {
		t.Errorf("the second line came %s in, after the polling window: the polls did not deliver it", at[1])
	}
	if len(reads) < 10 {
		t.Errorf("%d polls in the window, want it polled every %s", len(reads), fastFollowEvery)
	}
}

// eventsFile is an events file of one event of each type, and the offset
// after each.
func eventsFile(types ...string) ([]byte, []int64) {
	var data []byte
	var ends []int64
	for i, typ := range types {
		ev := contract.Event{Seq: int64(i + 1), Type: typ, Line: "line", Conclusion: contract.Success}
		data = append(data, contract.MarshalEvent(&ev)...)
		ends = append(ends, int64(len(data)))
	}
	return data, ends
}

// followAll follows alloc-1's events to the terminal one, returning the
// offset after each and when (since start) it came.
func followAll(t *testing.T, c *Client, start time.Time) ([]int64, []time.Duration) {
	t.Helper()
	var got []int64
	var at []time.Duration
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Follow(ctx, Status{AllocID: "alloc-1", NodeID: "node-1"}, 0, func(line []byte, next int64) error {
		ev, err := contract.DecodeEvent(line)
		if err != nil {
			t.Fatalf("line at %d: %v", next, err)
		}
		got, at = append(got, next), append(at, time.Since(start))
		if ev.Terminal() {
			return contract.ErrStop
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got, at
}

func TestFollowNeedsAnAllocation(t *testing.T) {
	_, c := newFakeNomad(t)
	if err := c.Follow(context.Background(), Status{}, 0, nil); err == nil {
		t.Fatal("followed a job without an allocation")
	}
}

// A truncated events file is an interruption, resumed where it was.
func TestFollowFileEvent(t *testing.T) {
	streamOnly(t)
	f, c := newFakeNomad(t)
	line := contract.MarshalEvent(&contract.Event{Seq: 1, Type: contract.TypeInfraError, Message: "no image"})
	var n atomic.Int32
	f.streams["alloc-1"] = func(w http.ResponseWriter, r *http.Request, offset int64) {
		if n.Add(1) == 1 {
			json.NewEncoder(w).Encode(api.StreamFrame{File: contract.EventsPath(contract.TaskName), FileEvent: "file truncated"})
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return
		}
		writeFrames(w, line[offset:], offset)
		<-r.Context().Done()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := c.Follow(ctx, Status{AllocID: "alloc-1"}, 0, func([]byte, int64) error { return contract.ErrStop })
	if err != nil || n.Load() != 2 {
		t.Fatalf("Follow = %v after %d streams", err, n.Load())
	}
	err = c.Follow(ctx, Status{AllocID: "alloc-1"}, 0, func([]byte, int64) error { return errors.New("boom") })
	if err == nil || err.Error() != "boom" {
		t.Fatalf("fn's error: %v", err)
	}
}

// writeFrames sends data as Nomad does: JSON frames of a few bytes each,
// with the file offset after them.
func writeFrames(w http.ResponseWriter, data []byte, offset int64) {
	enc := json.NewEncoder(w)
	for len(data) > 0 {
		n := min(len(data), 17)
		offset += int64(n)
		enc.Encode(api.StreamFrame{Offset: offset, Data: data[:n], File: contract.EventsPath(contract.TaskName)})
		data = data[n:]
	}
	w.(http.Flusher).Flush()
}
