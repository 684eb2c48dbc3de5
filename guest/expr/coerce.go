package expr

import (
	"math"
	"reflect"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf16"
)

// truthy implements GitHub's boolean coercion: false, 0, -0, NaN, null and
// the empty string are falsy; every array and object is truthy.
func truthy(v Value) bool {
	switch x := v.(type) {
	case nil:
		return false
	case bool:
		return x
	case float64:
		return x != 0 && !math.IsNaN(x)
	case string:
		return x != ""
	}
	return kindOf(v) != kindNull
}

// ToNumber is GitHub's number coercion, for callers outside expressions.
func ToNumber(v Value) float64 { return toNumber(normalize(v)) }

// toNumber implements GitHub's number coercion.
func toNumber(v Value) float64 {
	switch x := v.(type) {
	case nil:
		return 0
	case bool:
		if x {
			return 1
		}
		return 0
	case float64:
		return x
	case string:
		return parseNumber(x)
	}
	return math.NaN()
}

// ToString converts a value the way GitHub does when it puts one into a
// string: null is empty, numbers print like .NET's "G15" format, arrays and
// objects print as "Array" and "Object".
func ToString(v Value) string {
	v = normalize(v)
	switch x := v.(type) {
	case nil:
		return ""
	case bool:
		if x {
			return "true"
		}
		return "false"
	case float64:
		return formatNumber(x)
	case string:
		return x
	}
	if kindOf(v) == kindArray {
		return "Array"
	}
	return "Object"
}

// formatNumber prints a number as the Actions runner does (.NET's "G15"
// format): at most 15 significant digits, fixed-point for decimal exponents
// -5 < e < 15 and otherwise scientific with a signed, two-digit-minimum
// exponent (1E-05, 1E+15). Negative zero prints as "0".
func formatNumber(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "Infinity"
	case math.IsInf(f, -1):
		return "-Infinity"
	case f == 0:
		return "0"
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// 'e' with 14 decimals rounds to exactly 15 significant digits.
	s := strconv.FormatFloat(f, 'e', 14, 64)
	mant, expStr, _ := strings.Cut(s, "e")
	exp, _ := strconv.Atoi(expStr)
	digits := strings.TrimRight(strings.Replace(mant, ".", "", 1), "0")
	if exp > -5 && exp < 15 {
		return sign + fixedPoint(digits, exp)
	}
	out := digits[:1]
	if len(digits) > 1 {
		out += "." + digits[1:]
	}
	esign := "+"
	if exp < 0 {
		esign, exp = "-", -exp
	}
	e := strconv.Itoa(exp)
	if len(e) < 2 {
		e = "0" + e
	}
	return sign + out + "E" + esign + e
}

// fixedPoint places the decimal point in significant digits d.ddd given the
// decimal exponent of the first digit.
func fixedPoint(digits string, exp int) string {
	if exp < 0 {
		return "0." + strings.Repeat("0", -exp-1) + digits
	}
	if len(digits) <= exp+1 {
		return digits + strings.Repeat("0", exp+1-len(digits))
	}
	return digits[:exp+1] + "." + digits[exp+1:]
}

// parseNumber converts a string to a number like the runner does: surrounding
// white space is ignored, empty is 0, decimal literals with optional sign,
// point and exponent are read as doubles, 0x… and 0o… are read as 32-bit
// two's-complement integers (so 0xFFFFFFFF is -1), and Infinity with an
// optional sign is accepted ignoring case. Anything else is NaN.
func parseNumber(s string) float64 {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0
	case isDecimal(s):
		f, _ := strconv.ParseFloat(s, 64) // overflow yields ±Inf, as in .NET
		return f
	case len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'o'):
		base := 16
		if s[1] == 'o' {
			base = 8
		}
		// With an explicit base ParseUint takes digits only: no sign,
		// prefix or underscores, as in .NET.
		if n, err := strconv.ParseUint(s[2:], base, 32); err == nil {
			return float64(int32(uint32(n)))
		}
	case strings.EqualFold(strings.TrimPrefix(s, "+"), "Infinity"):
		return math.Inf(1)
	case strings.EqualFold(s, "-Infinity"):
		return math.Inf(-1)
	}
	return math.NaN()
}

// isDecimal reports whether s is [sign] digits [. digits] [e [sign] digits]
// with at least one mantissa digit. strconv.ParseFloat alone would also take
// "inf", "0x1p3" and underscores, which GitHub does not.
func isDecimal(s string) bool {
	i := 0
	if s[0] == '+' || s[0] == '-' {
		i++
	}
	n := digitRun(s, &i)
	if i < len(s) && s[i] == '.' {
		i++
		n += digitRun(s, &i)
	}
	if n == 0 {
		return false
	}
	if i < len(s) && (s[i] == 'e' || s[i] == 'E') {
		i++
		if i < len(s) && (s[i] == '+' || s[i] == '-') {
			i++
		}
		if digitRun(s, &i) == 0 {
			return false
		}
	}
	return i == len(s)
}

func digitRun(s string, i *int) int {
	start := *i
	for *i < len(s) && s[*i] >= '0' && s[*i] <= '9' {
		*i++
	}
	return *i - start
}

// foldRune is the per-character mapping of .NET's OrdinalIgnoreCase, which
// GitHub uses for every string comparison: simple upper-casing, except that
// dotless ı stays itself (İ already does), so neither meets ASCII i/I.
func foldRune(r rune) rune {
	if r == 'ı' {
		return r
	}
	return unicode.ToUpper(r)
}

// fold upper-cases s with foldRune; folded strings compare the way
// OrdinalIgnoreCase compares the originals.
func fold(s string) string {
	ascii := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x80 || ('a' <= c && c <= 'z') {
			ascii = false
			break
		}
	}
	if ascii {
		return s
	}
	return strings.Map(foldRune, s)
}

// compareFold orders strings like OrdinalIgnoreCase: folded UTF-16 code
// units compared numerically.
func compareFold(a, b string) int {
	fa, fb := fold(a), fold(b)
	if fa == fb {
		return 0
	}
	ua, ub := utf16.Encode([]rune(fa)), utf16.Encode([]rune(fb))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return int(ua[i]) - int(ub[i])
		}
	}
	return len(ua) - len(ub)
}

// coerce brings two operands to a common kind the way the runner's
// comparison operators do (JavaScript's abstract comparison without
// converting arrays and objects): number vs string converts the string,
// null and booleans become numbers, anything involving a collection is left
// as it is and so never compares equal or ordered.
func coerce(l, r Value) (Value, Value, kind, kind) {
	lk, rk := kindOf(l), kindOf(r)
	for lk != rk {
		switch {
		case lk == kindNumber && rk == kindString:
			r, rk = toNumber(r), kindNumber
		case lk == kindString && rk == kindNumber:
			l, lk = toNumber(l), kindNumber
		case lk == kindBool || lk == kindNull:
			l, lk = toNumber(l), kindNumber
		case rk == kindBool || rk == kindNull:
			r, rk = toNumber(r), kindNumber
		default:
			return l, r, lk, rk
		}
	}
	return l, r, lk, rk
}

// Equal is GitHub's `==` on two values, for callers outside expressions
// that must compare the way an expression would (matrix include filters).
func Equal(l, r Value) bool { return equal(normalize(l), normalize(r)) }

// equal is GitHub's `==`.
func equal(l, r Value) bool {
	l, r, lk, rk := coerce(l, r)
	if lk != rk {
		return false
	}
	switch lk {
	case kindNull:
		return true
	case kindNumber:
		return l.(float64) == r.(float64) // NaN is unequal to everything
	case kindString:
		return compareFold(l.(string), r.(string)) == 0
	case kindBool:
		return l.(bool) == r.(bool)
	}
	return sameCollection(l, r)
}

// less is GitHub's `<`; `a > b` is less(b, a). Mixed or collection kinds,
// null vs null and NaN are never ordered.
func less(l, r Value) bool {
	l, r, lk, rk := coerce(l, r)
	if lk != rk {
		return false
	}
	switch lk {
	case kindNumber:
		return l.(float64) < r.(float64)
	case kindString:
		return compareFold(l.(string), r.(string)) < 0
	case kindBool:
		return !l.(bool) && r.(bool)
	}
	return false
}

// sameCollection is identity: GitHub compares arrays and objects by
// reference. A Go slice is identified by its backing array, length and
// capacity; an empty slice without capacity has no backing array to tell it
// apart, so it is never identical to anything (not even itself). ParseJSON
// gives every array capacity so that fromJSON results behave.
func sameCollection(l, r Value) bool {
	switch x := l.(type) {
	case *Object, *filtered:
		return l == r
	case []any:
		y, ok := r.([]any)
		return ok && len(x) == len(y) && cap(x) == cap(y) && cap(x) > 0 &&
			&x[:1][0] == &y[:1][0]
	case map[string]any, map[string]string:
		return reflect.TypeOf(l) == reflect.TypeOf(r) &&
			reflect.ValueOf(l).UnsafePointer() == reflect.ValueOf(r).UnsafePointer()
	}
	return false
}
