package kdl

// Character classes from the KDL 2.0 specification ("Whitespace",
// "Newline", "Disallowed Literal Code Points", "Non-identifier characters").

// isSpace reports whether r is non-newline whitespace (the spec's
// unicode-space table).
func isSpace(r rune) bool {
	switch r {
	case '\t', ' ', 0x00A0, 0x1680, 0x202F, 0x205F, 0x3000:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

// isNewline reports whether r starts a newline. CR LF is one newline;
// newlineLen measures it.
func isNewline(r rune) bool {
	switch r {
	case '\r', '\n', 0x0085, 0x000B, 0x000C, 0x2028, 0x2029:
		return true
	}
	return false
}

// isDisallowed reports whether r may not appear literally anywhere in a
// document. The BOM is allowed only as the very first code point; the
// caller handles that exception.
func isDisallowed(r rune) bool {
	switch {
	case r <= 0x08, r >= 0x0E && r <= 0x1F, r == 0x7F:
		return true
	case r >= 0xD800 && r <= 0xDFFF:
		return true
	case r == 0x200E, r == 0x200F, r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0xFEFF:
		return true
	}
	return false
}

// isIdentChar reports whether r may appear in an identifier string.
func isIdentChar(r rune) bool {
	if isSpace(r) || isNewline(r) || isDisallowed(r) {
		return false
	}
	switch r {
	case '\\', '/', '(', ')', '{', '}', ';', '[', ']', '"', '#', '=':
		return false
	}
	return true
}

func isDigit(r rune) bool { return r >= '0' && r <= '9' }

func isSign(r rune) bool { return r == '+' || r == '-' }

// keywords are the bare words the spec forbids as identifiers, so that
// `true` cannot silently become a string where `#true` was meant.
var keywords = map[string]bool{
	"true": true, "false": true, "null": true,
	"inf": true, "-inf": true, "nan": true,
}

// looksNumeric reports whether an identifier-shaped word starts like a
// number (`1x`, `-1x`, `.1`, `+.1`); such words are neither valid
// identifiers nor, unless they parse as one, valid numbers.
func looksNumeric(w []rune) bool {
	i := 0
	if i < len(w) && isSign(w[i]) {
		i++
	}
	if i < len(w) && w[i] == '.' {
		i++
	}
	return i < len(w) && isDigit(w[i])
}
