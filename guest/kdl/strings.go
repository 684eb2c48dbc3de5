package kdl

import (
	"fmt"
	"strconv"
	"strings"
)

// unit is one code point of a string body, whitespace escapes already
// removed. The spec dedents multi-line strings after whitespace escapes
// but before other escapes take effect, so a code point that came from an
// escape stays marked: "\s" is not indentation and "\n" does not split
// lines.
type unit struct {
	r   rune
	esc bool // produced by an escape
	at  int  // source index, for errors
}

// quotedString parses a quoted or raw, single- or multi-line string.
// start is its first code point; hashes is the number of "#" that open a
// raw string (0 for a quoted one), already seen but not consumed.
func (p *parser) quotedString(start, hashes int) (string, error) {
	p.pos = start + hashes
	marks := strings.Repeat("#", hashes)
	escapes := hashes == 0
	if !p.at(`"""`) {
		p.pos++
		units, err := p.stringBody(start, `"`+marks, escapes, false)
		return join(units), err
	}
	p.pos += 3
	if !p.newline() {
		return "", p.errAt(p.pos, `a multi-line string must start with a newline right after """ (use "..." for a single line)`)
	}
	units, err := p.stringBody(start, `"""`+marks, escapes, true)
	if err != nil {
		return "", err
	}
	return p.dedent(units)
}

// stringBody reads up to and including closer. Literal newlines are
// allowed only in multi-line strings and are normalized to LF.
func (p *parser) stringBody(start int, closer string, escapes, multiline bool) ([]unit, error) {
	var units []unit
	for {
		c := p.peek(0)
		switch {
		case c < 0:
			return nil, p.errAt(start, "string is never closed (missing %s)", closer)
		case p.at(closer):
			p.pos += len(closer)
			return units, nil
		case escapes && c == '\\':
			u, ok, err := p.escape()
			if err != nil {
				return nil, err
			}
			if ok {
				units = append(units, u)
			}
		case isNewline(c):
			if !multiline {
				return nil, p.errAt(p.pos, "%s", singleLineNewline(closer))
			}
			units = append(units, unit{r: '\n', at: p.pos})
			p.newline()
		default:
			units = append(units, unit{r: c, at: p.pos})
			p.pos++
		}
	}
}

func singleLineNewline(closer string) string {
	if closer == `"` {
		return `newline in a single-line string (use \n, or """ for a multi-line string)`
	}
	return fmt.Sprintf("raw string is not closed before the end of the line (close it with %s)", closer)
}

var simpleEscapes = map[rune]rune{
	'n': '\n', 'r': '\r', 't': '\t', '\\': '\\', '"': '"',
	'b': '\b', 'f': '\f', 's': ' ',
}

// escape consumes a backslash escape. A whitespace escape (backslash and
// all the whitespace and newlines after it) yields nothing.
func (p *parser) escape() (unit, bool, error) {
	at := p.pos
	c := p.peek(1)
	if isSpace(c) || isNewline(c) {
		p.pos++
		for isSpace(p.peek(0)) || isNewline(p.peek(0)) {
			p.pos++
		}
		return unit{}, false, nil
	}
	if r, ok := simpleEscapes[c]; ok {
		p.pos += 2
		return unit{r: r, esc: true, at: at}, true, nil
	}
	if c == 'u' {
		r, err := p.unicodeEscape()
		return unit{r: r, esc: true, at: at}, err == nil, err
	}
	if c < 0 {
		return unit{}, false, p.errAt(at, `string is never closed (input ends after "\")`)
	}
	return unit{}, false, p.errAt(at, `invalid escape "\%c" (valid: \n \r \t \\ \" \b \f \s \u{hex} and \ before whitespace)`, c)
}

// unicodeEscape consumes \u{X} with 1 to 6 hex digits naming a Unicode
// scalar value.
func (p *parser) unicodeEscape() (rune, error) {
	at := p.pos
	p.pos += 2
	if p.peek(0) != '{' {
		return 0, p.errAt(at, `invalid escape: \u must be followed by {hex digits}`)
	}
	p.pos++
	digits := p.pos
	for isHexDigit(p.peek(0)) {
		p.pos++
	}
	hex := string(p.src[digits:p.pos])
	if len(hex) == 0 || len(hex) > 6 || p.peek(0) != '}' {
		return 0, p.errAt(at, `invalid escape: \u{...} needs 1 to 6 hex digits and a closing "}"`)
	}
	p.pos++
	v, _ := strconv.ParseUint(hex, 16, 32)
	if v > 0x10FFFF || v >= 0xD800 && v <= 0xDFFF {
		return 0, p.errAt(at, `invalid escape \u{%s}: not a Unicode scalar value`, hex)
	}
	return rune(v), nil
}

func isHexDigit(r rune) bool {
	return isDigit(r) || r >= 'a' && r <= 'f' || r >= 'A' && r <= 'F'
}

// dedent applies the multi-line rules: the last line holds only
// whitespace, which is the prefix every other non-blank line must start
// with and loses; blank lines become empty; the newlines after the opening
// and before the closing quotes are dropped (the first was never read).
func (p *parser) dedent(units []unit) (string, error) {
	lines := splitLines(units)
	prefix := lines[len(lines)-1]
	for _, u := range prefix {
		if u.esc || !isSpace(u.r) {
			return "", p.errAt(u.at, `the closing """ of a multi-line string must be on its own line, after only whitespace`)
		}
	}
	var out []unit
	for i, line := range lines[:len(lines)-1] {
		if i > 0 {
			out = append(out, unit{r: '\n'})
		}
		if isBlank(line) {
			continue
		}
		if bad := mismatch(line, prefix); bad >= 0 {
			return "", p.errAt(line[bad].at, "multi-line string line must start with the same whitespace as the closing line")
		}
		out = append(out, line[len(prefix):]...)
	}
	return join(out), nil
}

// splitLines splits at literal newlines; it always returns at least one
// (possibly empty) line.
func splitLines(units []unit) [][]unit {
	lines := [][]unit{nil}
	for _, u := range units {
		if u.r == '\n' && !u.esc {
			lines = append(lines, nil)
			continue
		}
		lines[len(lines)-1] = append(lines[len(lines)-1], u)
	}
	return lines
}

func isBlank(line []unit) bool {
	for _, u := range line {
		if u.esc || !isSpace(u.r) {
			return false
		}
	}
	return true
}

// mismatch returns the index of the first unit of line that breaks the
// literal prefix, or -1 if line starts with it.
func mismatch(line, prefix []unit) int {
	for i, u := range prefix {
		if i >= len(line) { // only a blank line can be this short; guard anyway
			return len(line) - 1
		}
		if line[i].esc || line[i].r != u.r {
			return i
		}
	}
	return -1
}

func join(units []unit) string {
	var sb strings.Builder
	for _, u := range units {
		sb.WriteRune(u.r)
	}
	return sb.String()
}
