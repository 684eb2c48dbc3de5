package kdl

import (
	"math/big"
	"strings"
)

// parseNumber parses a decimal, hexadecimal, octal or binary literal.
// Integers become KindInt of any size. Decimals with a fraction or an
// exponent become KindFloat holding canonical text: no underscores, no
// "+" sign, no leading zeros, and an upper-case "E" with an explicit
// exponent sign (1e10 → 1E+10), which is the test suite's form.
func parseNumber(w []rune) (Value, bool) {
	body := string(w)
	neg := false
	if body != "" && (body[0] == '+' || body[0] == '-') {
		neg = body[0] == '-'
		body = body[1:]
	}
	if len(body) >= 2 && body[0] == '0' {
		if base := radix(body[1]); base != 0 {
			return radixInt(body[2:], base, neg)
		}
	}
	return decimal(body, neg)
}

func radix(c byte) int {
	switch c {
	case 'x':
		return 16
	case 'o':
		return 8
	case 'b':
		return 2
	}
	return 0
}

// radixInt parses digits of base, which may contain "_" after the first.
// It checks every character itself: big.Int.SetString would also take a
// sign ("0x-1") or a prefix.
func radixInt(digits string, base int, neg bool) (Value, bool) {
	if digits == "" || digits[0] == '_' {
		return Value{}, false
	}
	for i := 0; i < len(digits); i++ {
		if c := digits[i]; c != '_' && digitValue(c) >= base {
			return Value{}, false
		}
	}
	n, _ := new(big.Int).SetString(strings.ReplaceAll(digits, "_", ""), base)
	if neg {
		n.Neg(n)
	}
	return Value{Kind: KindInt, num: n}, true
}

// digitValue returns the value of a hex digit, or 99.
func digitValue(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return 99
}

// decimal parses integer ('.' integer)? (('e'|'E') sign? integer)?.
func decimal(body string, neg bool) (Value, bool) {
	whole, rest, ok := digitRun(body)
	if !ok {
		return Value{}, false
	}
	var frac, exp string
	if strings.HasPrefix(rest, ".") {
		if frac, rest, ok = digitRun(rest[1:]); !ok {
			return Value{}, false
		}
	}
	if rest != "" && (rest[0] == 'e' || rest[0] == 'E') {
		if exp, rest, ok = exponent(rest[1:]); !ok {
			return Value{}, false
		}
	}
	if rest != "" {
		return Value{}, false
	}
	if frac == "" && exp == "" {
		n, _ := new(big.Int).SetString(whole, 10)
		if neg {
			n.Neg(n)
		}
		return Value{Kind: KindInt, num: n}, true
	}
	return Value{Kind: KindFloat, str: floatText(neg, whole, frac, exp)}, true
}

func exponent(s string) (string, string, bool) {
	sign := "+"
	if s != "" && (s[0] == '+' || s[0] == '-') {
		sign, s = s[:1], s[1:]
	}
	digits, rest, ok := digitRun(s)
	return sign + trimZeros(digits), rest, ok
}

func floatText(neg bool, whole, frac, exp string) string {
	var sb strings.Builder
	if neg {
		sb.WriteByte('-')
	}
	sb.WriteString(trimZeros(whole))
	if frac != "" {
		sb.WriteString("." + frac)
	}
	if exp != "" {
		sb.WriteString("E" + exp)
	}
	return sb.String()
}

// digitRun reads digit (digit | "_")* from the start of s and returns the
// digits without underscores and the rest of s.
func digitRun(s string) (digits, rest string, ok bool) {
	if s == "" || !isDigit(rune(s[0])) {
		return "", s, false
	}
	i := 0
	for i < len(s) && (isDigit(rune(s[i])) || s[i] == '_') {
		i++
	}
	return strings.ReplaceAll(s[:i], "_", ""), s[i:], true
}

func trimZeros(digits string) string {
	if t := strings.TrimLeft(digits, "0"); t != "" {
		return t
	}
	return "0"
}
