// Package mask hides secret values in everything the Solstice guest agent
// reports. It reproduces the secret masker of GitHub's runner
// (actions/runner, src/Sdk/DTLogging/Logging/SecretMasker.cs and
// ValueEncoders.cs, registered in Runner.Common/HostContext.cs):
//
//   - every registered value, and every encoded form of it the runner
//     registers, is replaced by "***" wherever it occurs; occurrences that
//     overlap or touch are merged into a single "***" (so "s3cr3ts3cr3t"
//     becomes "***", not "******");
//   - the encoded forms are: base64 of the UTF-8 bytes, and base64 of the
//     bytes without their first one and without their first two (the three
//     alignments in which the value can appear inside a longer base64 text
//     such as base64("user:" + password)), the JSON string escape, the URI
//     data escape (Uri.EscapeDataString), the XML escape, `"` escaped as
//     `\"` (command lines), `'` doubled (expression strings), the value
//     with surrounding double quotes removed (values over 8 characters
//     only), and the two PowerShell "&" sections (6 characters or more);
//   - secrets of the job are trimmed, then registered whole and line by
//     line (each line trimmed, blank lines dropped), because a process's
//     output is masked one line at a time ([Masker.AddSecret]);
//   - `::add-mask::` values are registered whole (untrimmed) and line by
//     line; a blank value is refused ([Masker.AddMask]).
//
// Short values: like the runner, there is no minimum length. A secret "a"
// masks every "a" in the log, and its base64 form "YQ==" too. This is
// deliberate: a shorter minimum would leak short secrets, and the runner's
// behaviour is what users know. (The runner only applies a minimum of 7
// characters to `::stop-commands::` tokens, which the caller handles.)
//
// Matching uses an Aho-Corasick automaton over all patterns, so masking a
// line costs O(len(line)) however many secrets there are; the automaton is
// rebuilt lazily after values were added. A Masker is safe for concurrent
// use.
package mask

import (
	"strings"
	"sync"
)

// Replacement is what a masked range becomes.
const Replacement = "***"

// Masker holds the values to hide. The zero value is not usable; call New.
type Masker struct {
	mu       sync.RWMutex
	values   map[string]bool // values passed to AddValue (not their encodings)
	patterns map[string]bool // values and all their encodings
	ac       *automaton      // nil when patterns changed since the last build
	maxLen   int
}

// New returns an empty Masker.
func New() *Masker {
	return &Masker{values: map[string]bool{}, patterns: map[string]bool{}}
}

// AddValue registers value and its encoded forms. An empty value is ignored.
// This is the runner's SecretMasker.AddValue.
func (m *Masker) AddValue(value string) {
	if value == "" {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.values[value] {
		return
	}
	m.values[value] = true
	for _, p := range append([]string{value}, Encodings(value)...) {
		if p == "" || m.patterns[p] {
			continue
		}
		m.patterns[p] = true
		m.ac = nil
		m.maxLen = max(m.maxLen, len(p))
	}
}

// AddSecret registers a secret of the job the way the runner's worker does
// (Worker.InitializeSecretMasker): the trimmed value, then each of its
// trimmed, non-blank lines.
func (m *Masker) AddSecret(value string) {
	value = strings.TrimSpace(value)
	m.AddValue(value)
	m.addLines(value)
}

// AddMask registers the data of an `::add-mask::` command: the value as
// given, then each of its trimmed, non-blank lines. It reports false, and
// registers nothing, for a blank value (the runner warns "Can't add secret
// mask for empty string in ##[add-mask] command.").
func (m *Masker) AddMask(value string) bool {
	if strings.TrimSpace(value) == "" {
		return false
	}
	m.AddValue(value)
	m.addLines(value)
	return true
}

func (m *Masker) addLines(value string) {
	if !strings.ContainsAny(value, "\r\n") {
		return
	}
	for _, line := range strings.FieldsFunc(value, func(r rune) bool { return r == '\r' || r == '\n' }) {
		if line = strings.TrimSpace(line); line != "" {
			m.AddValue(line)
		}
	}
}

// MaxLen is the length in bytes of the longest pattern (0 when empty). A
// stream cut into pieces must look this far ahead of a cut to know that
// no secret straddles it.
func (m *Masker) MaxLen() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.maxLen
}

// Mask returns s with every registered pattern replaced by "***".
func (m *Masker) Mask(s string) string {
	rs := m.Ranges(s)
	if len(rs) == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	prev := 0
	for _, r := range rs {
		b.WriteString(s[prev:r.Start])
		b.WriteString(Replacement)
		prev = r.End
	}
	b.WriteString(s[prev:])
	return b.String()
}

// Contains reports whether s holds any registered pattern.
func (m *Masker) Contains(s string) bool { return len(m.Ranges(s)) > 0 }

// Range is a half-open byte range [Start, End) to mask.
type Range struct{ Start, End int }

// Ranges returns the merged, sorted byte ranges of s that Mask replaces.
// Ranges that overlap or touch are merged, as the runner does.
func (m *Masker) Ranges(s string) []Range { return scan(m.automaton(), s) }

// RangesBytes is Ranges for a byte slice (output not yet turned into text).
func (m *Masker) RangesBytes(b []byte) []Range { return scan(m.automaton(), b) }

// automaton returns the current automaton, building it if needed; nil when
// there is nothing to mask.
func (m *Masker) automaton() *automaton {
	m.mu.RLock()
	ac, n := m.ac, len(m.patterns)
	m.mu.RUnlock()
	if ac != nil || n == 0 {
		return ac
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ac == nil {
		ps := make([]string, 0, len(m.patterns))
		for p := range m.patterns {
			ps = append(ps, p)
		}
		m.ac = build(ps)
	}
	return m.ac
}
