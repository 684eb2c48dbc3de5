package workflow

import (
	"fmt"

	"github.com/solstice-ci/solstice/guest/expr"
)

// GitHub's limits on a matrix.
const (
	MaxCombinations = 256
	maxProduct      = 1 << 20 // cross products larger than this are refused unexamined
	// maxWork bounds the expansion's work: each combination of the cross
	// product is built from the vectors and compared with every include
	// and exclude value, so a product well under maxProduct with a few
	// hundred exclude entries would take minutes.
	maxWork = 1 << 22
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
	filters := 0
	for _, f := range m.Include {
		filters += weight(f)
	}
	for _, f := range m.Exclude {
		filters += weight(f)
	}
	if int64(size)*int64(len(m.Vectors)+filters) > maxWork {
		return 0, fmt.Sprintf("is too large to expand: its cross product of %d combinations would each be compared with %d include and exclude values; GitHub allows at most %d combinations", size, filters, MaxCombinations)
	}
	return size, ""
}

// weight is the number of values in v, nested ones included.
func weight(v any) int {
	n := 1
	switch x := v.(type) {
	case Map:
		for _, kv := range x {
			n += weight(kv.Value)
		}
	case []any:
		for _, e := range x {
			n += weight(e)
		}
	}
	return n
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

// looseEqual compares two leaves with the expression == operator. A leaf
// against an object or array never matches: expressions compare those by
// identity only.
func looseEqual(a, b any) bool {
	if isCollection(a) || isCollection(b) {
		return false
	}
	return expr.Equal(a, b)
}

func isCollection(v any) bool {
	switch v.(type) {
	case Map, []any:
		return true
	}
	return false
}
