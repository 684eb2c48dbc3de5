package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
)

// TokenType is a TemplateToken type (ObjectTemplating/Tokens/TokenType.cs).
type TokenType int

// Token types.
const (
	TokenString           TokenType = 0
	TokenSequence         TokenType = 1
	TokenMapping          TokenType = 2
	TokenBasicExpression  TokenType = 3
	TokenInsertExpression TokenType = 4
	TokenBoolean          TokenType = 5
	TokenNumber           TokenType = 6
	TokenNull             TokenType = 7
)

// TemplateToken is an unevaluated workflow template value. JSON is either
// a plain string/bool/number/null (literal without position) or an object
// {type, file, line, col, lit|expr|directive|bool|num|seq|map} where map
// is a list of {Key, Value} pairs (TemplateTokenJsonConverter.cs).
type TemplateToken struct {
	Type      TokenType
	Lit       string // TokenString
	Expr      string // TokenBasicExpression
	Directive string // TokenInsertExpression ("insert")
	Bool      bool
	Num       float64
	Seq       []TemplateToken
	Map       []MapEntry
	File      *int
	Line, Col *int
}

// MapEntry is one mapping pair; keys are scalar tokens.
type MapEntry struct {
	Key   TemplateToken `json:"Key"`
	Value TemplateToken `json:"Value"`
}

// tokenObject is the object form (names matched case-insensitively).
type tokenObject struct {
	Type      *int            `json:"type"`
	File      *int            `json:"file,omitempty"`
	Line      *int            `json:"line,omitempty"`
	Col       *int            `json:"col,omitempty"`
	Lit       *string         `json:"lit,omitempty"`
	Expr      *string         `json:"expr,omitempty"`
	Directive *string         `json:"directive,omitempty"`
	Bool      *bool           `json:"bool,omitempty"`
	Num       *float64        `json:"num,omitempty"`
	Seq       []TemplateToken `json:"seq,omitempty"`
	Map       []MapEntry      `json:"map,omitempty"`
}

// UnmarshalJSON accepts both the short and the object form.
func (t *TemplateToken) UnmarshalJSON(data []byte) error {
	*t = TemplateToken{}
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0:
		return fmt.Errorf("protocol: empty template token")
	case string(data) == "null":
		t.Type = TokenNull
		return nil
	case data[0] == '"':
		t.Type = TokenString
		return json.Unmarshal(data, &t.Lit)
	case string(data) == "true" || string(data) == "false":
		t.Type, t.Bool = TokenBoolean, string(data) == "true"
		return nil
	case data[0] == '{':
		return t.fromObject(data)
	case data[0] == '[':
		return fmt.Errorf("protocol: template token cannot be a JSON array")
	}
	t.Type = TokenNumber
	return json.Unmarshal(data, &t.Num)
}

func (t *TemplateToken) fromObject(data []byte) error {
	var o tokenObject
	if err := json.Unmarshal(data, &o); err != nil {
		return fmt.Errorf("protocol: template token: %w", err)
	}
	if o.Type != nil {
		t.Type = TokenType(*o.Type) // absent type means string
	}
	if t.Type < TokenString || t.Type > TokenNull {
		return fmt.Errorf("protocol: template token: unknown type %d", t.Type)
	}
	t.File, t.Line, t.Col = o.File, o.Line, o.Col
	t.Lit, t.Expr, t.Directive = deref(o.Lit), deref(o.Expr), deref(o.Directive)
	if o.Bool != nil {
		t.Bool = *o.Bool
	}
	if o.Num != nil {
		t.Num = *o.Num
	}
	t.Seq, t.Map = o.Seq, o.Map
	return nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// MarshalJSON writes the token as actions/runner does.
func (t TemplateToken) MarshalJSON() ([]byte, error) {
	short := t.File == nil && t.Line == nil && t.Col == nil
	switch {
	case short && t.Type == TokenString:
		return json.Marshal(t.Lit)
	case short && t.Type == TokenBoolean:
		return json.Marshal(t.Bool)
	case short && t.Type == TokenNumber:
		return json.Marshal(t.Num)
	case short && t.Type == TokenNull:
		return []byte("null"), nil
	}
	typ := int(t.Type)
	o := tokenObject{Type: &typ, File: t.File, Line: t.Line, Col: t.Col}
	switch t.Type {
	case TokenString:
		o.Lit = &t.Lit
	case TokenBasicExpression:
		o.Expr = &t.Expr
	case TokenInsertExpression:
		o.Directive = &t.Directive
	case TokenBoolean:
		o.Bool = &t.Bool
	case TokenNumber:
		o.Num = &t.Num
	case TokenSequence:
		o.Seq = t.Seq
	case TokenMapping:
		o.Map = t.Map
	}
	return json.Marshal(o)
}

// IsScalar reports whether the token is not a sequence or mapping.
func (t *TemplateToken) IsScalar() bool {
	return t != nil && t.Type != TokenSequence && t.Type != TokenMapping
}

// IsExpression reports a ${{ }} expression (basic or insert).
func (t *TemplateToken) IsExpression() bool {
	return t != nil && (t.Type == TokenBasicExpression || t.Type == TokenInsertExpression)
}

// Text renders a scalar as workflow text: a literal as itself, an
// expression as "${{ expr }}", booleans and numbers as their text, null
// (and non-scalars, and nil) as "".
func (t *TemplateToken) Text() string {
	if t == nil {
		return ""
	}
	switch t.Type {
	case TokenString:
		return t.Lit
	case TokenBasicExpression:
		return "${{ " + t.Expr + " }}"
	case TokenInsertExpression:
		return "${{ " + t.Directive + " }}"
	case TokenBoolean:
		return strconv.FormatBool(t.Bool)
	case TokenNumber:
		return formatNumber(t.Num)
	}
	return ""
}

// formatNumber prints like .NET's invariant double formatting for the
// common cases: integers without a fraction, others shortest round-trip.
func formatNumber(f float64) string {
	if f == math.Trunc(f) && math.Abs(f) < 1e15 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	return strconv.FormatFloat(f, 'G', -1, 64)
}

// KeyValue is a mapping pair with the key rendered as text.
type KeyValue struct {
	Key   string
	Value *TemplateToken
}

// Mapping returns a mapping's pairs in order (nil for other tokens).
func (t *TemplateToken) Mapping() []KeyValue {
	if t == nil || t.Type != TokenMapping {
		return nil
	}
	out := make([]KeyValue, len(t.Map))
	for i := range t.Map {
		out[i] = KeyValue{Key: t.Map[i].Key.Text(), Value: &t.Map[i].Value}
	}
	return out
}

// Lookup returns the value of the first pair whose key text equals key
// (case-sensitive, as MappingToken lookups in the runner are for inputs).
func (t *TemplateToken) Lookup(key string) (*TemplateToken, bool) {
	for _, kv := range t.Mapping() {
		if kv.Key == key {
			return kv.Value, true
		}
	}
	return nil, false
}

// Sequence returns a sequence's items (nil for other tokens).
func (t *TemplateToken) Sequence() []TemplateToken {
	if t == nil || t.Type != TokenSequence {
		return nil
	}
	return t.Seq
}
