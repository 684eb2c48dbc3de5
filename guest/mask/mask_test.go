package mask

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestMaskForms(t *testing.T) {
	const secret = `p@ss "w0rd"/&x`
	b64 := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := []struct {
		name, in, want string
	}{
		{"plain", "token=" + secret + " end", "token=*** end"},
		{"twice", secret + "-" + secret, "***-***"},
		{"touching merge into one", secret + secret, "***"},
		{"base64 aligned", "Authorization: Basic " + b64(secret), "Authorization: Basic ***"},
		{"json escaped", `{"pw":"p@ss \"w0rd\"/&x"}`, `{"pw":"***"}`},
		{"url escaped", "https://h/?pw=p%40ss%20%22w0rd%22%2F%26x", "https://h/?pw=***"},
		{"command line escaped", `run "p@ss \"w0rd\"/&x"`, `run "***"`},
		{"xml escaped", "<pw>p@ss &quot;w0rd&quot;/&amp;x</pw>", "<pw>***</pw>"},
		{"no secret", "nothing to see", "nothing to see"},
		{"empty", "", ""},
	}
	m := New()
	m.AddSecret(secret)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := m.Mask(tt.in); got != tt.want {
				t.Errorf("Mask(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// Inside a longer base64 text (think base64("user:" + password)) the secret
// starts at one of three byte alignments; each is masked, and only the
// characters that also encode the prefix stay visible.
func TestMaskBase64Alignments(t *testing.T) {
	const secret = "hunter2-is-my-password"
	m := New()
	m.AddSecret(secret)
	for _, prefix := range []string{"", "u", "us", "usr", "user", "user:", "x-access-token:"} {
		enc := base64.StdEncoding.EncodeToString([]byte(prefix + secret))
		got := m.Mask(enc)
		visible := (len(prefix) + 2) / 3 * 4 // base64 chars touching the prefix
		if !strings.HasSuffix(got, "***") || len(got)-3 > visible {
			t.Errorf("prefix %q: Mask(%q) = %q", prefix, enc, got)
		}
	}
}

func TestMaskExpressionAndQuotes(t *testing.T) {
	m := New()
	m.AddValue(`it's`)
	if got := m.Mask(`'it''s'`); got != `'***'` {
		t.Errorf("expression escape: %q", got)
	}
	m = New()
	m.AddValue(`"long-quoted"`)
	if got := m.Mask(`value long-quoted here`); got != `value *** here` {
		t.Errorf("trimmed double quotes: %q", got)
	}
	m = New()
	m.AddValue(`"short"`) // 7 characters: the inside is not masked
	if got := m.Mask(`short`); got != `short` {
		t.Errorf("short quoted value: %q", got)
	}
}

func TestAddMaskMultiline(t *testing.T) {
	m := New()
	if !m.AddMask("first line\n  second line  \r\n\nthird") {
		t.Fatal("AddMask refused a real value")
	}
	for in, want := range map[string]string{
		"first line":                             "***",
		"x second line y":                        "x *** y",
		"third":                                  "***",
		"first line\n  second line  \r\n\nthird": "***", // the whole value
	} {
		if got := m.Mask(in); got != want {
			t.Errorf("Mask(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAddMaskBlankRefused(t *testing.T) {
	m := New()
	for _, v := range []string{"", "   ", "\n\t"} {
		if m.AddMask(v) {
			t.Errorf("AddMask(%q) accepted", v)
		}
	}
	if m.MaxLen() != 0 {
		t.Errorf("blank masks registered patterns")
	}
}

func TestAddSecretTrims(t *testing.T) {
	m := New()
	m.AddSecret("  padded\n")
	if got := m.Mask("[padded]"); got != "[***]" {
		t.Errorf("got %q", got)
	}
	if got := m.Mask("[  padded]"); got != "[  ***]" {
		t.Errorf("spaces around a trimmed secret should stay: %q", got)
	}
}

// The runner masks even one-character secrets (there is no minimum).
func TestShortSecret(t *testing.T) {
	m := New()
	m.AddSecret("a")
	if got := m.Mask("banana"); got != "b***n***n***" {
		t.Errorf("got %q", got)
	}
	if got := m.Mask("YQ=="); got != "***" {
		t.Errorf("base64 of a short secret: %q", got)
	}
}

func TestOverlappingMerge(t *testing.T) {
	m := New()
	m.AddValue("abcd")
	m.AddValue("cdef")
	if got := m.Mask("xxabcdefyy"); got != "xx***yy" {
		t.Errorf("overlap: %q", got)
	}
	m = New()
	m.AddValue("abc")
	m.AddValue("b")
	if got := m.Mask("abc b"); got != "*** ***" {
		t.Errorf("nested: %q", got)
	}
}

func TestRangesBytes(t *testing.T) {
	m := New()
	m.AddValue("secret")
	rs := m.RangesBytes([]byte("a secret b"))
	if len(rs) != 1 || rs[0] != (Range{2, 8}) {
		t.Errorf("ranges = %v", rs)
	}
	if m.MaxLen() < len("secret") {
		t.Errorf("MaxLen = %d", m.MaxLen())
	}
}

func TestEncodingsPowerShell(t *testing.T) {
	enc := Encodings("secretpart1&secretpart2&secretpart3")
	if enc[9] != "secretpart1&secretpart2&" || enc[10] != "secretpart3" {
		t.Errorf("powershell sections = %q, %q", enc[9], enc[10])
	}
	enc = Encodings("secretpart1&+secretpart2")
	if enc[9] != "secretpart1&+" || enc[10] != "ecretpart2" {
		t.Errorf("powershell &+ sections = %q, %q", enc[9], enc[10])
	}
}

func TestMaskConcurrentAdd(t *testing.T) {
	m := New()
	done := make(chan bool)
	go func() {
		for i := 0; i < 200; i++ {
			m.AddValue(fmt.Sprintf("value-%d-xyz", i))
		}
		close(done)
	}()
	for i := 0; i < 200; i++ {
		m.Mask("some line with value-5-xyz in it")
	}
	<-done
	if got := m.Mask("value-199-xyz"); got != "***" {
		t.Errorf("got %q", got)
	}
}

// Many masks and a long line: the automaton keeps this linear.
func TestMaskManyAndLong(t *testing.T) {
	m := New()
	for i := 0; i < 2000; i++ {
		m.AddSecret(fmt.Sprintf("secret-number-%05d", i))
	}
	line := strings.Repeat("harmless text ", 80000) + "secret-number-01999" // ~1 MB
	start := time.Now()
	got := m.Mask(line)
	if !strings.HasSuffix(got, " ***") {
		t.Errorf("tail = %q", got[len(got)-20:])
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("masking 1 MB with 2000 secrets took %v", d)
	}
}
