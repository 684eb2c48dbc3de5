package guestssh

import (
	"bytes"
	"crypto/rand"
	"os/exec"
	"testing"
)

// TestPrintfFormatPrintsExactlyItsBytes runs the format through the
// shells guests have: whatever the bytes (random seeds start with '-' one
// time in 256), printf must print them back unchanged.
func TestPrintfFormatPrintsExactlyItsBytes(t *testing.T) {
	random := make([]byte, 512)
	if _, err := rand.Read(random); err != nil {
		t.Fatal(err)
	}
	all := make([]byte, 0, 256)
	for c := 255; c >= 1; c-- {
		all = append(all, byte(c))
	}
	cases := []struct {
		name string
		in   []byte
	}{
		{"leading dash", []byte("-$x")},
		{"leading double dash", []byte("--help")},
		{"dash alone", []byte("-")},
		{"percent and backslash", []byte(`%s%%\n\\`)},
		{"quote", []byte(`it's`)},
		{"every byte but NUL", all},
		{"random", random},
		{"dash then random", append([]byte("-"), random...)},
	}
	for _, shell := range []string{"dash", "bash"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			t.Fatalf("%s is needed to check the format: %v", shell, err)
		}
		for _, tc := range cases {
			t.Run(shell+"/"+tc.name, func(t *testing.T) {
				out, err := exec.Command(path, "-c", "printf "+ShellQuote(PrintfFormat(tc.in))).Output()
				if err != nil {
					t.Fatalf("printf %q: %v", PrintfFormat(tc.in), err)
				}
				if !bytes.Equal(out, tc.in) {
					t.Errorf("printf printed %q, want %q", out, tc.in)
				}
			})
		}
	}
}
