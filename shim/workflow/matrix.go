package workflow

import (
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// GitHub's limits on a matrix.
const (
	MaxCombinations = 256
	maxProduct      = 1 << 20 // cross products larger than this are refused unexamined
)

// combo is one matrix combination.
type combo struct {
	values Map
	named  int // leading entries of values that make the display name
}

// include is one include entry split as MatrixBuilder.cs splits it.
type include struct {
	filter Map // keys that are vectors
	extra  Map // the other keys
}

// expand builds the combinations in GitHub's order (MatrixBuilder.Build):
// the cross product with the first vector varying slowest, minus excluded
// combinations, each with the extras of every include entry whose filter
// matches it (later entries overwrite earlier extras); then each include
// entry that matched nothing, as a combination of its own. msg is non-empty
// when the result is empty or larger than GitHub allows.
func (m *Matrix) expand() (out []combo, msg string) {
	size, msg := m.productSize()
	if msg != "" {
		return nil, msg
	}
	incs := m.splitIncludes()
	matched := make([]bool, len(incs))
	count := 0
	for i := range size {
		c := m.product(i, size)
		if m.excluded(c) {
			continue
		}
		extra := applyIncludes(c, incs, matched)
		if count++; count <= MaxCombinations {
			out = append(out, combo{values: append(c, extra...), named: len(c)})
		}
	}
	rest := unmatched(incs, matched)
	out, count = append(out, rest...), count+len(rest)
	switch {
	case count == 0:
		return nil, "makes no combination (every combination is excluded)"
	case count > MaxCombinations:
		return nil, fmt.Sprintf("makes %d combinations; GitHub allows at most %d", count, MaxCombinations)
	}
	return out, ""
}

func (m *Matrix) productSize() (int, string) {
	if len(m.Vectors) == 0 {
		return 0, ""
	}
	size := 1
	for _, v := range m.Vectors {
		size *= len(v.Values)
		if size > maxProduct {
			return 0, fmt.Sprintf("has a cross product of more than %d combinations; GitHub allows at most %d", maxProduct, MaxCombinations)
		}
	}
	return size, ""
}

// product returns combination i of the cross product.
func (m *Matrix) product(i, size int) Map {
	c := make(Map, 0, len(m.Vectors))
	block := size
	for _, v := range m.Vectors {
		block /= len(v.Values)
		c = append(c, KV{v.Key, v.Values[(i/block)%len(v.Values)]})
	}
	return c
}

func (m *Matrix) excluded(c Map) bool {
	for _, e := range m.Exclude {
		if matches(e, c) {
			return true
		}
	}
	return false
}

func (m *Matrix) splitIncludes() []include {
	incs := make([]include, len(m.Include))
	for i, item := range m.Include {
		for _, kv := range item {
			if m.isVector(kv.Key) {
				incs[i].filter = append(incs[i].filter, kv)
			} else {
				incs[i].extra = append(incs[i].extra, kv)
			}
		}
	}
	return incs
}

// applyIncludes returns the extras that include entries add to c.
func applyIncludes(c Map, incs []include, matched []bool) Map {
	var extra Map
	for i, inc := range incs {
		if !matches(inc.filter, c) {
			continue
		}
		matched[i] = true
		for _, kv := range inc.extra {
			extra = extra.set(kv.Key, kv.Value)
		}
	}
	return extra
}

// unmatched turns include entries that matched nothing into combinations:
// filter keys first, then extras, as MatrixBuilder does.
func unmatched(incs []include, matched []bool) []combo {
	var out []combo
	for i, inc := range incs {
		if matched[i] {
			continue
		}
		values := append(append(Map{}, inc.filter...), inc.extra...)
		out = append(out, combo{values: values, named: len(values)})
	}
	return out
}

// matches reports whether every leaf of filter equals the value at the same
// path in c, compared with the expression == operator (GitHub builds one
// `matrix.path == literal` expression per leaf).
func matches(filter Map, c Map) bool {
	for _, kv := range filter {
		v, _ := c.Get(kv.Key)
		if !leavesMatch(kv.Value, v) {
			return false
		}
	}
	return true
}

func leavesMatch(f, v any) bool {
	switch fv := f.(type) {
	case Map:
		vm, _ := v.(Map)
		for _, kv := range fv {
			sub, _ := vm.Get(kv.Key)
			if !leavesMatch(kv.Value, sub) {
				return false
			}
		}
		return true
	case []any:
		va, _ := v.([]any)
		for i, e := range fv {
			var sub any
			if i < len(va) {
				sub = va[i]
			}
			if !leavesMatch(e, sub) {
				return false
			}
		}
		return true
	}
	return looseEqual(f, v)
}

type kind int

const (
	kNull kind = iota
	kBool
	kNumber
	kString
	kObject
)

func kindOf(v any) (kind, any) {
	switch x := v.(type) {
	case nil:
		return kNull, nil
	case bool:
		return kBool, x
	case int64:
		return kNumber, float64(x)
	case float64:
		return kNumber, x
	case string:
		return kString, x
	}
	return kObject, v
}

// looseEqual is the Actions expression == on two values: strings compare
// ignoring case, mixed kinds are coerced to numbers, objects never equal.
func looseEqual(a, b any) bool {
	ka, va := kindOf(a)
	kb, vb := kindOf(b)
	ka, va, kb, vb = coerce(ka, va, kb, vb)
	if ka != kb {
		return false
	}
	switch ka {
	case kNull:
		return true
	case kNumber:
		return va.(float64) == vb.(float64)
	case kString:
		return strings.EqualFold(va.(string), vb.(string))
	case kBool:
		return va.(bool) == vb.(bool)
	}
	return false
}

func coerce(ka kind, va any, kb kind, vb any) (kind, any, kind, any) {
	switch {
	case ka == kb:
	case ka == kNumber && kb == kString:
		return ka, va, kNumber, toNumber(vb)
	case ka == kString && kb == kNumber:
		return kNumber, toNumber(va), kb, vb
	case ka == kBool || ka == kNull:
		return coerce(kNumber, toNumber(va), kb, vb)
	case kb == kBool || kb == kNull:
		return coerce(ka, va, kNumber, toNumber(vb))
	}
	return ka, va, kb, vb
}

var decimal = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$`)

// toNumber is the Actions number coercion (JavaScript's Number()).
func toNumber(v any) float64 {
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

func parseNumber(s string) float64 {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return 0
	case decimal.MatchString(s):
		f, _ := strconv.ParseFloat(s, 64)
		return f
	case s == "Infinity":
		return math.Inf(1)
	case s == "-Infinity":
		return math.Inf(-1)
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0o"):
		base := map[string]int{"0x": 16, "0o": 8}[s[:2]]
		if i, err := strconv.ParseInt(s[2:], base, 32); err == nil && s[2] != '-' && s[2] != '+' {
			return float64(i)
		}
	}
	return math.NaN()
}
