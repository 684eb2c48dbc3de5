package kdl

import "strings"

// plainValue parses a string, number or keyword (no annotation).
func (p *parser) plainValue(context string) (Value, error) {
	c := p.peek(0)
	switch {
	case c == '"':
		s, err := p.quotedString(p.pos, 0)
		return StringValue(s), err
	case c == '#':
		return p.hashValue()
	case isDigit(c) || isSign(c) && isDigit(p.peek(1)):
		return p.number()
	case isIdentChar(c):
		return p.identifier()
	}
	if context != "" {
		context = " " + context
	}
	return Value{}, p.errAt(p.pos, "expected a value%s, found %s", context, p.describe())
}

// word consumes a run of identifier characters. Numbers and keywords are
// delimited the same way, so "1.0.0" or "0x1g" is read whole and rejected
// as one bad number rather than split into surprising pieces.
func (p *parser) word() []rune {
	start := p.pos
	for !p.eof() && isIdentChar(p.src[p.pos]) {
		p.pos++
	}
	return p.src[start:p.pos]
}

func (p *parser) number() (Value, error) {
	start := p.pos
	w := p.word()
	v, ok := parseNumber(w)
	if !ok {
		return Value{}, p.errAt(start, "invalid number %q", string(w))
	}
	return v, nil
}

func (p *parser) identifier() (Value, error) {
	start := p.pos
	w := p.word()
	s := string(w)
	switch {
	case looksNumeric(w):
		// .5 and +.5 read like numbers missing their leading digit;
		// the spec reserves them rather than make them strings.
		return Value{}, p.errAt(start, "invalid number %q (quote it if it is a string)", s)
	case keywords[s]:
		return Value{}, p.errAt(start, "bare %q is not allowed: write #%s for the keyword or %q for the string", s, s, s)
	}
	return StringValue(s), nil
}

// hashValue parses what starts with "#": a raw string or a keyword.
func (p *parser) hashValue() (Value, error) {
	start := p.pos
	hashes := 0
	for p.peek(hashes) == '#' {
		hashes++
	}
	if p.peek(hashes) == '"' {
		s, err := p.quotedString(start, hashes)
		return StringValue(s), err
	}
	p.pos += hashes
	if hashes > 1 {
		return Value{}, p.errAt(start, "expected a raw string after %q, found %s", strings.Repeat("#", hashes), p.describe())
	}
	w := string(p.word())
	switch {
	case w == "":
		return Value{}, p.errAt(start, `expected a keyword or raw string after "#", found %s`, p.describe())
	case w == "true", w == "false":
		return BoolValue(w == "true"), nil
	case w == "null":
		return NullValue(), nil
	case w == "inf", w == "-inf", w == "nan":
		return Value{Kind: KindFloat, str: w}, nil
	}
	return Value{}, p.errAt(start, "unknown keyword %q (keywords: #true #false #null #inf #-inf #nan)", "#"+w)
}
