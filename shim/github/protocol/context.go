package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// ContextDataType is a PipelineContextData type (PipelineContextDataType.cs).
type ContextDataType int

// Context data types.
const (
	ContextString                  ContextDataType = 0
	ContextArray                   ContextDataType = 1
	ContextDictionary              ContextDataType = 2
	ContextBoolean                 ContextDataType = 3
	ContextNumber                  ContextDataType = 4
	ContextCaseSensitiveDictionary ContextDataType = 5
)

// ContextData is a PipelineContextData value: a plain JSON string, bool or
// number, or {t, s|a|d|b|n} with d a list of {k, v}
// (PipelineContextDataJsonConverter.cs). JSON null decodes to Null.
type ContextData struct {
	Type  ContextDataType
	Null  bool
	Str   string
	Bool  bool
	Num   float64
	Array []ContextData
	Dict  []DictEntry
}

// DictEntry is one dictionary pair.
type DictEntry struct {
	Key   string      `json:"k"`
	Value ContextData `json:"v"`
}

type contextObject struct {
	T *int          `json:"t,omitempty"`
	S *string       `json:"s,omitempty"`
	A []ContextData `json:"a,omitempty"`
	D []DictEntry   `json:"d,omitempty"`
	B *bool         `json:"b,omitempty"`
	N *float64      `json:"n,omitempty"`
}

// UnmarshalJSON accepts the short and the object form.
func (d *ContextData) UnmarshalJSON(data []byte) error {
	*d = ContextData{}
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return fmt.Errorf("protocol: empty context data")
	case string(data) == "null":
		d.Null = true
		return nil
	case data[0] == '"':
		return json.Unmarshal(data, &d.Str)
	case string(data) == "true" || string(data) == "false":
		d.Type, d.Bool = ContextBoolean, string(data) == "true"
		return nil
	case data[0] == '{':
		return d.fromObject(data)
	case data[0] == '[':
		return fmt.Errorf("protocol: context data cannot be a JSON array")
	}
	d.Type = ContextNumber
	return json.Unmarshal(data, &d.Num)
}

func (d *ContextData) fromObject(data []byte) error {
	var o contextObject
	if err := json.Unmarshal(data, &o); err != nil {
		return fmt.Errorf("protocol: context data: %w", err)
	}
	if o.T != nil {
		d.Type = ContextDataType(*o.T) // absent t means string
	}
	if d.Type < ContextString || d.Type > ContextCaseSensitiveDictionary {
		return fmt.Errorf("protocol: context data: unknown type %d", d.Type)
	}
	d.Str = deref(o.S)
	d.Array, d.Dict = o.A, o.D
	if o.B != nil {
		d.Bool = *o.B
	}
	if o.N != nil {
		d.Num = *o.N
	}
	return nil
}

// MarshalJSON writes the value as actions/runner does.
func (d ContextData) MarshalJSON() ([]byte, error) {
	if d.Null {
		return []byte("null"), nil
	}
	switch d.Type {
	case ContextString:
		return json.Marshal(d.Str)
	case ContextBoolean:
		return json.Marshal(d.Bool)
	case ContextNumber:
		return json.Marshal(d.Num)
	}
	t := int(d.Type)
	return json.Marshal(contextObject{T: &t, A: d.Array, D: d.Dict})
}

// Value converts to plain JSON values: string, bool, float64, []any,
// map[string]any, or nil.
func (d ContextData) Value() any {
	if d.Null {
		return nil
	}
	switch d.Type {
	case ContextString:
		return d.Str
	case ContextBoolean:
		return d.Bool
	case ContextNumber:
		return d.Num
	case ContextArray:
		out := make([]any, len(d.Array))
		for i, v := range d.Array {
			out[i] = v.Value()
		}
		return out
	}
	out := make(map[string]any, len(d.Dict))
	for _, e := range d.Dict {
		out[e.Key] = e.Value.Value()
	}
	return out
}

// Lookup finds a dictionary member: case-insensitively for Dictionary (as
// the runner's DictionaryContextData), exactly for CaseSensitiveDictionary.
func (d ContextData) Lookup(key string) (ContextData, bool) {
	if d.Type != ContextDictionary && d.Type != ContextCaseSensitiveDictionary {
		return ContextData{}, false
	}
	for _, e := range d.Dict {
		if e.Key == key || (d.Type == ContextDictionary && strings.EqualFold(e.Key, key)) {
			return e.Value, true
		}
	}
	return ContextData{}, false
}
