package expr

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ParseJSON decodes one JSON value into expression values: objects become
// *Object (keeping key order), arrays []any, numbers float64. It is what
// fromJSON() uses, and what the guest should use to load contexts such as
// github.event so that toJSON() and `.*` see keys in their original order.
// Input must be strict JSON with nothing after the value.
func ParseJSON(data []byte) (Value, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	v, err := readJSON(dec)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("unexpected end of JSON input")
		}
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return v, nil
}

func readJSON(dec *json.Decoder) (Value, error) {
	t, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch x := t.(type) {
	case json.Delim:
		if x == '[' {
			return readArray(dec)
		}
		return readObject(dec)
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return nil, err
		}
		return f, nil // beyond float64 range reads as ±Infinity, as in .NET
	}
	return t, nil // string, bool or nil
}

func readArray(dec *json.Decoder) (Value, error) {
	// Capacity of at least one gives every array its own identity; see
	// sameCollection.
	arr := make([]any, 0, 4)
	for dec.More() {
		v, err := readJSON(dec)
		if err != nil {
			return nil, err
		}
		arr = append(arr, v)
	}
	_, err := dec.Token() // ]
	return arr, err
}

func readObject(dec *json.Decoder) (Value, error) {
	obj := NewObject()
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := k.(string)
		if !ok {
			return nil, fmt.Errorf("object key %v is not a string", k)
		}
		v, err := readJSON(dec)
		if err != nil {
			return nil, err
		}
		obj.Set(key, v)
	}
	_, err := dec.Token() // }
	return obj, err
}

// ToJSON renders a value the way GitHub's toJSON() does: two-space
// indentation, one element per line, `"key": value`, empty collections as
// [] and {}, numbers in the same format as ToString (so 1e21 is 1E+21 and
// NaN is NaN, unlike JSON.stringify).
func ToJSON(v Value) string {
	var b strings.Builder
	writeJSON(&b, normalize(v), 0, math.MaxInt)
	return b.String()
}

// writeJSON writes v, giving up (false) once b holds more than limit
// bytes: indentation grows with depth, so the text of a deeply nested value
// grows with the square of its size.
func writeJSON(b *strings.Builder, v Value, level, limit int) bool {
	if b.Len() > limit {
		return false
	}
	switch kindOf(v) {
	case kindNull:
		b.WriteString("null")
	case kindBool, kindNumber:
		b.WriteString(ToString(v))
	case kindString:
		writeJSONString(b, v.(string))
	case kindArray:
		items, _ := elements(v)
		if len(items) == 0 {
			b.WriteString("[]")
			return true
		}
		b.WriteByte('[')
		for i, it := range items {
			jsonLine(b, i, level+1)
			if !writeJSON(b, normalize(it), level+1, limit) {
				return false
			}
		}
		jsonLine(b, 0, level)
		b.WriteByte(']')
	case kindObject:
		i := 0
		for k, it := range entries(v) {
			if i == 0 {
				b.WriteByte('{')
			}
			jsonLine(b, i, level+1)
			writeJSONString(b, k)
			b.WriteString(": ")
			if !writeJSON(b, normalize(it), level+1, limit) {
				return false
			}
			i++
		}
		if i == 0 {
			b.WriteString("{}")
			return true
		}
		jsonLine(b, 0, level)
		b.WriteByte('}')
	}
	return b.Len() <= limit
}

// jsonLine starts the line for element i of a collection at the given
// indentation level (or the closing bracket when i is 0).
func jsonLine(b *strings.Builder, i, level int) {
	if i > 0 {
		b.WriteByte(',')
	}
	b.WriteByte('\n')
	b.WriteString(strings.Repeat("  ", level))
}

// writeJSONString quotes s as the runner's JSON library (Newtonsoft) does by
// default: besides '"', '\' and control characters it escapes U+0085,
// U+2028 and U+2029, and leaves '<', '>', '&' and other non-ASCII alone.
func writeJSONString(b *strings.Builder, s string) {
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		case '\b':
			b.WriteString(`\b`)
		case '\f':
			b.WriteString(`\f`)
		default:
			if r < 0x20 || r == 0x85 || r == 0x2028 || r == 0x2029 {
				fmt.Fprintf(b, `\u%04x`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
}
