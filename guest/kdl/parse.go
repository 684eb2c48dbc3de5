package kdl

import (
	"fmt"
	"io"
	"sort"
	"unicode/utf8"
)

const bom = 0xFEFF

// Parse reads a whole KDL 2.0 document from r. Syntax errors are *Error.
func Parse(r io.Reader) (*Document, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("kdl: %w", err)
	}
	return parseBytes(b)
}

// ParseString parses a KDL 2.0 document held in s.
func ParseString(s string) (*Document, error) { return parseBytes([]byte(s)) }

// parser is a recursive-descent parser over the decoded code points. The
// whole document is held in memory: KDL needs unbounded lookahead in a few
// places (a string is a property name only if "=" follows, possibly after
// comments and line continuations) and our documents are small.
type parser struct {
	src        []rune
	pos        int
	lineStarts []int // index in src of the first code point of each line
	depth      int   // children blocks open
}

func parseBytes(b []byte) (*Document, error) {
	p, err := newParser(b)
	if err != nil {
		return nil, err
	}
	nodes, err := p.nodes(false)
	if err != nil {
		return nil, err
	}
	return &Document{Nodes: nodes}, nil
}

// newParser decodes b and rejects invalid UTF-8 and the code points the
// spec disallows anywhere, comments included, so the grammar code need
// not think about them.
func newParser(b []byte) (*parser, error) {
	p := &parser{src: make([]rune, 0, len(b))}
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size == 1 {
			p.indexLines()
			return nil, p.errAt(len(p.src), "invalid UTF-8 (byte 0x%02X)", b[i])
		}
		p.src = append(p.src, r)
		i += size
	}
	p.indexLines()
	if len(p.src) > 0 && p.src[0] == bom {
		p.pos = 1
	}
	for i := p.pos; i < len(p.src); i++ {
		if r := p.src[i]; isDisallowed(r) {
			return nil, p.errAt(i, "code point U+%04X is not allowed in a KDL document", r)
		}
	}
	return p, nil
}

func (p *parser) indexLines() {
	p.lineStarts = []int{0}
	if len(p.src) > 0 && p.src[0] == bom {
		p.lineStarts[0] = 1 // editors do not show the BOM; do not count it
	}
	for i := 0; i < len(p.src); i++ {
		if n := newlineLen(p.src, i); n > 0 {
			i += n - 1
			p.lineStarts = append(p.lineStarts, i+1)
		}
	}
}

// newlineLen returns the length of the newline starting at src[i], or 0.
func newlineLen(src []rune, i int) int {
	switch {
	case i >= len(src) || !isNewline(src[i]):
		return 0
	case src[i] == '\r' && i+1 < len(src) && src[i+1] == '\n':
		return 2
	}
	return 1
}

func (p *parser) posAt(i int) Pos {
	line := sort.Search(len(p.lineStarts), func(k int) bool { return p.lineStarts[k] > i })
	if line == 0 { // only the BOM precedes line 1's first column
		line = 1
	}
	return Pos{Line: line, Col: max(i-p.lineStarts[line-1]+1, 1)}
}

func (p *parser) errAt(i int, format string, args ...any) error {
	pos := p.posAt(i)
	return &Error{Line: pos.Line, Column: pos.Col, Msg: fmt.Sprintf(format, args...)}
}

// describe names the code point at p.pos for error messages.
func (p *parser) describe() string {
	switch c := p.peek(0); {
	case c < 0:
		return "end of input"
	case isNewline(c):
		return "newline"
	default:
		return fmt.Sprintf("%q", string(c))
	}
}

// peek returns the code point off places ahead, or -1 past the end.
func (p *parser) peek(off int) rune {
	if i := p.pos + off; i < len(p.src) {
		return p.src[i]
	}
	return -1
}

func (p *parser) eof() bool { return p.pos >= len(p.src) }

// at reports whether the input continues with the ASCII string s.
func (p *parser) at(s string) bool {
	if p.pos+len(s) > len(p.src) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if p.src[p.pos+i] != rune(s[i]) {
			return false
		}
	}
	return true
}
