package expr

import (
	"iter"
	"slices"
)

// Value is what an expression evaluates to and what contexts hold: nil,
// bool, float64, string, []any, map[string]any, map[string]string or *Object.
// Go integer and float32 values are accepted as numbers; any other Go type
// reads as null.
type Value = any

// Object is a JSON object that remembers the order of its keys. GitHub's
// dictionaries keep insertion order, which shows in toJSON output and in the
// order of `obj.*` filters (think `join(matrix.*, '-')`); a Go map would
// shuffle both. Keys are unique case-insensitively, like GitHub's. The
// zero value is an empty object ready to use.
type Object struct {
	keys  []string
	vals  []Value
	index map[string]int // folded key -> position
}

// NewObject returns an empty Object.
func NewObject() *Object { return &Object{index: map[string]int{}} }

// Set adds key or, if a key equal to it ignoring case exists, replaces that
// entry's value in place.
func (o *Object) Set(key string, v Value) {
	if o.index == nil {
		o.index = map[string]int{}
	}
	k := fold(key)
	if i, ok := o.index[k]; ok {
		o.vals[i] = v
		return
	}
	o.index[k] = len(o.keys)
	o.keys = append(o.keys, key)
	o.vals = append(o.vals, v)
}

// Get looks key up ignoring case.
func (o *Object) Get(key string) (Value, bool) {
	i, ok := o.index[fold(key)]
	if !ok {
		return nil, false
	}
	return o.vals[i], true
}

// Len is the number of entries.
func (o *Object) Len() int { return len(o.keys) }

// All yields the entries in insertion order.
func (o *Object) All() iter.Seq2[string, Value] {
	return func(yield func(string, Value) bool) {
		for i, k := range o.keys {
			if !yield(k, o.vals[i]) {
				return
			}
		}
	}
}

// filtered is the array an object filter (`a.*`) produces. It is kept apart
// from plain arrays because GitHub applies any further `.x` or `[i]` to each
// element rather than to the array itself: `a.*.b` and `a.*[0]` both map.
// It is a pointer so that two filters never compare equal by identity.
type filtered struct{ items []Value }

// kind is the expression type of a value.
type kind int

const (
	kindNull kind = iota
	kindBool
	kindNumber
	kindString
	kindArray
	kindObject
)

func (k kind) String() string {
	return [...]string{"null", "a boolean", "a number", "a string", "an array", "an object"}[k]
}

// normalize maps the Go types callers may reasonably put in contexts onto
// the expression types, so the rest of the package sees few shapes.
func normalize(v Value) Value {
	switch x := v.(type) {
	case nil, bool, float64, string, []any, map[string]any, map[string]string, *Object, *filtered:
		return v
	case int:
		return float64(x)
	case int64:
		return float64(x)
	case int32:
		return float64(x)
	case uint:
		return float64(x)
	case uint64:
		return float64(x)
	case uint32:
		return float64(x)
	case float32:
		return float64(x)
	}
	return nil
}

func kindOf(v Value) kind {
	switch v.(type) {
	case bool:
		return kindBool
	case float64:
		return kindNumber
	case string:
		return kindString
	case []any, *filtered:
		return kindArray
	case map[string]any, map[string]string, *Object:
		return kindObject
	}
	return kindNull
}

func isPrimitive(v Value) bool { return kindOf(v) < kindArray }

// elements returns the items of an array value (nil for anything else).
func elements(v Value) ([]Value, bool) {
	switch x := v.(type) {
	case []any:
		return x, true
	case *filtered:
		return x.items, true
	}
	return nil, false
}

// entries yields an object's entries: *Object in insertion order, Go maps in
// sorted key order because they have no order of their own.
func entries(v Value) iter.Seq2[string, Value] {
	switch x := v.(type) {
	case *Object:
		return x.All()
	case map[string]any:
		return sortedEntries(x)
	case map[string]string:
		return sortedEntries(x)
	}
	return func(func(string, Value) bool) {}
}

func sortedEntries[V any](m map[string]V) iter.Seq2[string, Value] {
	return func(yield func(string, Value) bool) {
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if !yield(k, m[k]) {
				return
			}
		}
	}
}

// property looks a key up in an object value ignoring case, as GitHub does.
func property(v Value, key string) (Value, bool) {
	switch x := v.(type) {
	case *Object:
		r, ok := x.Get(key)
		return normalize(r), ok
	case map[string]any:
		r, ok := lookupFold(x, key)
		return normalize(r), ok
	case map[string]string:
		return lookupFold(x, key)
	}
	return nil, false
}

// lookupFold prefers an exact key and otherwise takes the smallest key that
// matches ignoring case, so the choice is deterministic if a Go map holds
// keys differing only in case.
func lookupFold[V any](m map[string]V, key string) (Value, bool) {
	if v, ok := m[key]; ok {
		return v, true
	}
	want := fold(key)
	best, found := "", false
	for k := range m {
		if fold(k) == want && (!found || k < best) {
			best, found = k, true
		}
	}
	if !found {
		return nil, false
	}
	return m[best], true
}
