package expr

import (
	"math"
	"strings"
	"unicode"
)

type tokenKind int

const (
	tokEOF tokenKind = iota
	tokLParen
	tokRParen
	tokLBracket
	tokRBracket
	tokComma
	tokDot
	tokStar
	tokNot
	tokOp    // == != < <= > >= && ||
	tokNull  // null
	tokBool  // true false
	tokNum   // numbers, NaN, Infinity
	tokStr   // 'quoted'
	tokIdent // context names, function names and property names
	tokBad   // anything the grammar has no place for
)

type token struct {
	kind tokenKind
	text string // source text; the operator for tokOp
	val  Value  // literal value for tokNull, tokBool, tokNum, tokStr
	col  int    // 1-based position in characters
}

// lexer splits an expression into tokens. It follows the runner's rules
// where they are unusual: a '.' starts a number (".5") only where a value
// may begin, a word after '.' is always a property name (so `a.true` and
// `a.null` are properties), and a malformed stretch is reported whole up to
// the next delimiter (the symbol in "1 =2" is "=2").
type lexer struct {
	src  []rune
	pos  int
	prev tokenKind
	toks []token
}

func lex(s string) []token {
	lx := &lexer{src: []rune(s), prev: tokEOF}
	for {
		t := lx.next()
		lx.toks = append(lx.toks, t)
		if t.kind == tokEOF {
			return lx.toks
		}
		lx.prev = t.kind
	}
}

func (lx *lexer) next() token {
	for lx.pos < len(lx.src) && unicode.IsSpace(lx.src[lx.pos]) {
		lx.pos++
	}
	if lx.pos >= len(lx.src) {
		return token{kind: tokEOF, col: lx.pos + 1}
	}
	start := lx.pos
	c := lx.src[start]
	switch {
	case punct[c] != tokEOF:
		lx.pos++
		return token{kind: punct[c], text: string(c), col: start + 1}
	case c == '\'':
		return lx.str()
	case strings.ContainsRune("!<>=&|", c):
		return lx.operator()
	case c == '.' && !lx.valueMayStart():
		lx.pos++
		return token{kind: tokDot, text: ".", col: start + 1}
	case c == '.' || c == '-' || c == '+' || ('0' <= c && c <= '9'):
		return lx.number()
	}
	return lx.word()
}

var punct = map[rune]tokenKind{
	'(': tokLParen, ')': tokRParen, '[': tokLBracket, ']': tokRBracket,
	',': tokComma, '*': tokStar,
}

// valueMayStart reports whether the previous token leaves room for a value,
// which decides whether '.' is a number or a property access.
func (lx *lexer) valueMayStart() bool {
	switch lx.prev {
	case tokEOF, tokComma, tokLParen, tokLBracket, tokNot, tokOp:
		return true
	}
	return false
}

// isBoundary reports the characters that end a word or number.
func isBoundary(r rune) bool {
	return strings.ContainsRune("()[],.!<>=&|", r) || unicode.IsSpace(r)
}

// chunk advances to the next boundary ('.' counts as one unless inNumber)
// and returns the text from start.
func (lx *lexer) chunk(start int, inNumber bool) string {
	for lx.pos < len(lx.src) && (!isBoundary(lx.src[lx.pos]) || (inNumber && lx.src[lx.pos] == '.')) {
		lx.pos++
	}
	return string(lx.src[start:lx.pos])
}

func (lx *lexer) bad(start int, text string) token {
	return token{kind: tokBad, text: text, col: start + 1}
}

func (lx *lexer) number() token {
	start := lx.pos
	lx.pos++
	text := lx.chunk(start, true)
	f := parseNumber(text)
	if math.IsNaN(f) {
		return lx.bad(start, text)
	}
	return token{kind: tokNum, text: text, val: f, col: start + 1}
}

func (lx *lexer) word() token {
	start := lx.pos
	lx.pos++
	text := lx.chunk(start, false)
	if !isKeyword(text) {
		return lx.bad(start, text)
	}
	t := token{kind: tokIdent, text: text, col: start + 1}
	if lx.prev == tokDot {
		return t // property names may be spelled like literals
	}
	switch text {
	case "null":
		t.kind = tokNull
	case "true", "false":
		t.kind, t.val = tokBool, text == "true"
	case "NaN":
		t.kind, t.val = tokNum, math.NaN()
	case "Infinity":
		t.kind, t.val = tokNum, math.Inf(1)
	}
	return t
}

// isKeyword reports a legal identifier: a letter or '_' followed by letters,
// digits, '_' or '-' (as in `steps.my-step.outputs`).
func isKeyword(s string) bool {
	for i, r := range s {
		letter := ('a' <= r && r <= 'z') || ('A' <= r && r <= 'Z') || r == '_'
		if !letter && (i == 0 || !(('0' <= r && r <= '9') || r == '-')) {
			return false
		}
	}
	return s != ""
}

func (lx *lexer) str() token {
	start := lx.pos
	var b strings.Builder
	for lx.pos++; lx.pos < len(lx.src); lx.pos++ {
		r := lx.src[lx.pos]
		if r != '\'' {
			b.WriteRune(r)
			continue
		}
		if lx.pos+1 < len(lx.src) && lx.src[lx.pos+1] == '\'' {
			b.WriteRune('\'') // '' is an escaped quote
			lx.pos++
			continue
		}
		lx.pos++
		return token{kind: tokStr, text: string(lx.src[start:lx.pos]), val: b.String(), col: start + 1}
	}
	return lx.bad(start, string(lx.src[start:]))
}

func (lx *lexer) operator() token {
	start := lx.pos
	if lx.pos+1 < len(lx.src) {
		two := string(lx.src[start : start+2])
		switch two {
		case "==", "!=", "<=", ">=", "&&", "||":
			lx.pos += 2
			return token{kind: tokOp, text: two, col: start + 1}
		}
	}
	lx.pos++
	switch c := lx.src[start]; c {
	case '!':
		return token{kind: tokNot, text: "!", col: start + 1}
	case '<', '>':
		return token{kind: tokOp, text: string(c), col: start + 1}
	}
	return lx.bad(start, lx.chunk(start, false))
}
