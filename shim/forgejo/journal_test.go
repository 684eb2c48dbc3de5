package forgejo

import (
	"context"
	"strings"
	"testing"
	"time"
)

// Rows the forge has not stored are bounded in bytes as well as in
// count: a guest writing long lines holds the stream back at
// maxPendingBytes, and the forge's acks make room again.
func TestJournalBoundsPendingBytes(t *testing.T) {
	j := newJournal(0)
	line := strings.Repeat("x", 1<<20)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	n := 0
	for ; n < 1000; n++ { // 1 GiB if nothing held it back
		if err := j.waitRoom(ctx); err != nil {
			break
		}
		j.row(time.Now(), line)
	}
	if n != maxPendingBytes/len(line) || j.bytes != maxPendingBytes {
		t.Fatalf("%d rows (%d bytes) pending, want %d bytes", n, j.bytes, maxPendingBytes)
	}
	j.acked(10)
	if j.bytes != maxPendingBytes-10*len(line) || j.full() {
		t.Fatalf("after an ack of 10 rows: %d bytes, full %v", j.bytes, j.full())
	}
	j.acked(5) // the forge lost rows: fillers count too
	if want := maxPendingBytes - 10*len(line) + 5*len(lostRow); j.bytes != want {
		t.Fatalf("after a lost ack: %d bytes, want %d", j.bytes, want)
	}
}
