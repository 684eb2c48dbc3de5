package tailbuf

import (
	"bytes"
	"strings"
	"testing"
)

// However much a guest prints, the buffer keeps the last bytes of it and
// no more, and takes every write whole.
func TestBufferKeepsTheEnd(t *testing.T) {
	tests := []struct {
		name   string
		writes []string
		want   string
	}{
		{"short", []string{"ok\n"}, "ok\n"},
		{"exactly max", []string{"12345678"}, "12345678"},
		{"one long write", []string{"abcdefghij12345678"}, "12345678"},
		{"many writes", []string{"abc", "defgh", "ijk", "lm"}, "fghijklm"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := New(8)
			for _, w := range tt.writes {
				if n, err := l.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v: a bounded buffer still takes everything", w, n, err)
				}
			}
			if got := string(l.Bytes()); got != tt.want {
				t.Errorf("kept %q, want %q", got, tt.want)
			}
		})
	}
	l := New(4096)
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	for range 160 { // 10 MiB
		l.Write(chunk)
	}
	l.Write([]byte("the end\n"))
	if got := l.Bytes(); len(got) != 4096 || !strings.HasSuffix(string(got), "the end\n") || cap(l.b) > 2*4096 {
		t.Errorf("after 10 MiB: kept %d bytes (cap %d), want the last 4096", len(got), cap(l.b))
	}
	if got := l.String(); !strings.HasSuffix(got, "the end") {
		t.Errorf("String() = …%q, want it trimmed", got[max(len(got)-20, 0):])
	}
	bad := New(8)
	bad.Write([]byte("ok \xff\xfe \n"))
	if got := bad.String(); got != "ok ?" {
		t.Errorf("String() of invalid UTF-8 = %q, want %q", got, "ok ?")
	}
}
