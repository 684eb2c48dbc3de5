package protocol

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A deeply nested message is refused before its tokens re-read it level
// by level; brackets inside strings do not count.
func TestJobMessageDepth(t *testing.T) {
	pad := `"` + strings.Repeat("x", 1<<20) + `"`
	deep := `{"steps":[{"inputs":` + strings.Repeat(`{"type":1,"seq":[`, 1000) + pad + strings.Repeat(`]}`, 1000) + `}]}`
	start := time.Now()
	var m JobMessage
	err := json.Unmarshal([]byte(deep), &m)
	if err == nil || !strings.Contains(err.Error(), "nests more than 64 levels") {
		t.Fatalf("error %v, want the nesting limit", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("refusing took %v", d)
	}
	brackets := `{"jobId":"` + strings.Repeat(`[{\"`, 100) + `","contextData":{"x":` + strings.Repeat(`{"t":1,"a":[`, 20) + `"s"` + strings.Repeat(`]}`, 20) + `}}`
	if err := json.Unmarshal([]byte(brackets), &m); err != nil {
		t.Fatalf("a message within the limit: %v", err)
	}
}
