package kdl

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// Kind is the kind of a Value.
type Kind uint8

// The zero Kind is KindNull, so the zero Value is #null.
const (
	KindNull Kind = iota
	KindString
	KindInt
	KindFloat
	KindBool
)

func (k Kind) String() string {
	switch k {
	case KindNull:
		return "null"
	case KindString:
		return "string"
	case KindInt:
		return "integer"
	case KindFloat:
		return "float"
	case KindBool:
		return "boolean"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Pos is a 1-based place in the source. Values and nodes built by hand have
// the zero Pos.
type Pos struct {
	Line, Col int
}

// Value is an argument or property value.
type Value struct {
	Type *string // type annotation, as in (u8)1; nil when absent
	Kind Kind
	Pos  // where the value (or its annotation) starts

	str string   // KindString: the text; KindFloat: canonical decimal or inf/-inf/nan
	num *big.Int // KindInt
	b   bool     // KindBool
}

// StringValue returns a string value.
func StringValue(s string) Value { return Value{Kind: KindString, str: s} }

// IntValue returns an integer value; it copies i.
func IntValue(i *big.Int) Value { return Value{Kind: KindInt, num: new(big.Int).Set(i)} }

// Int64Value returns an integer value.
func Int64Value(i int64) Value { return Value{Kind: KindInt, num: big.NewInt(i)} }

// FloatValue returns a non-integer number, written exactly as Format will
// print it; it accepts any KDL decimal literal (like 1_000.5e3) and
// normalizes it.
func FloatValue(literal string) (Value, error) {
	v, ok := parseNumber([]rune(literal))
	if !ok {
		return Value{}, fmt.Errorf("kdl: invalid number %q", literal)
	}
	if v.Kind == KindInt {
		// 1 and 1.0 are different literals; keep the caller's "float".
		v = Value{Kind: KindFloat, str: v.num.String() + ".0"}
	}
	return v, nil
}

// Float64Value returns a non-integer number holding f.
func Float64Value(f float64) Value {
	switch {
	case math.IsNaN(f):
		return Value{Kind: KindFloat, str: "nan"}
	case math.IsInf(f, 1):
		return Value{Kind: KindFloat, str: "inf"}
	case math.IsInf(f, -1):
		return Value{Kind: KindFloat, str: "-inf"}
	}
	s := strconv.FormatFloat(f, 'E', -1, 64)
	mant, exp, _ := strings.Cut(s, "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	if exp == "+00" {
		return Value{Kind: KindFloat, str: mant}
	}
	return Value{Kind: KindFloat, str: mant + "E" + exp[:1] + strings.TrimLeft(exp[1:], "0")}
}

// BoolValue returns #true or #false.
func BoolValue(b bool) Value { return Value{Kind: KindBool, b: b} }

// NullValue returns #null.
func NullValue() Value { return Value{} }

// AsString returns the text of a string value.
func (v Value) AsString() (string, bool) { return v.str, v.Kind == KindString }

// AsInt returns a copy of an integer value.
func (v Value) AsInt() (*big.Int, bool) {
	if v.Kind != KindInt {
		return nil, false
	}
	return new(big.Int).Set(v.num), true
}

// AsInt64 returns an integer value that fits in an int64.
func (v Value) AsInt64() (int64, bool) {
	if v.Kind != KindInt || !v.num.IsInt64() {
		return 0, false
	}
	return v.num.Int64(), true
}

// AsFloat64 returns any number as the nearest float64; values beyond its
// range become ±Inf.
func (v Value) AsFloat64() (float64, bool) {
	switch v.Kind {
	case KindInt:
		f, _ := new(big.Float).SetInt(v.num).Float64()
		return f, true
	case KindFloat:
		f, _ := strconv.ParseFloat(v.str, 64) // ErrRange still yields ±Inf or 0
		return f, true
	}
	return 0, false
}

// Decimal returns a float value's exact canonical text, such as "1.5E+10"
// or "inf", for callers that need more than float64 precision.
func (v Value) Decimal() (string, bool) { return v.str, v.Kind == KindFloat }

// AsBool returns the value of #true or #false.
func (v Value) AsBool() (bool, bool) { return v.b, v.Kind == KindBool }

// IsNull reports whether v is #null.
func (v Value) IsNull() bool { return v.Kind == KindNull }

// String returns v as canonical KDL, type annotation included.
func (v Value) String() string {
	var sb strings.Builder
	writeValue(&sb, v)
	return sb.String()
}
