package githubfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"
)

// maxBody bounds every JSON request body the fake accepts.
const maxBody = 8 << 20

// decodeStrict reads r's body into v. Unlike encoding/json it is
// case-sensitive and closed: every object key must be exactly one of the
// json tag names of the target struct (recursively), so "PlanId" for
// "planId" or "workflowRunBackendId" for "workflow_run_backend_id" fail.
func decodeStrict(r *http.Request, v any) error {
	data, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return unmarshalStrict(data, v)
}

func unmarshalStrict(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return fmt.Errorf("empty body")
	}
	if err := checkKeys(data, reflect.TypeOf(v), ""); err != nil {
		return err
	}
	if err := json.Unmarshal(data, v); err != nil {
		return fmt.Errorf("invalid JSON: %w", err)
	}
	return nil
}

var rawMessageType = reflect.TypeOf(json.RawMessage{})

// checkKeys walks data alongside t and reports the first object key that
// does not exactly match a json field name.
func checkKeys(data []byte, t reflect.Type, path string) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessageType || t.Kind() == reflect.Interface {
		return nil
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 || bytes.Equal(trimmed, []byte("null")) {
		return nil
	}
	switch t.Kind() {
	case reflect.Struct:
		return checkStruct(trimmed, t, path)
	case reflect.Slice:
		return checkSlice(trimmed, t, path)
	case reflect.Map:
		return checkMap(trimmed, t, path)
	}
	return nil
}

func checkStruct(data []byte, t reflect.Type, path string) error {
	if data[0] != '{' {
		return nil // type errors are reported by json.Unmarshal
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("invalid JSON at %q: %w", path, err)
	}
	fields := jsonFields(t)
	for k, raw := range obj {
		ft, ok := fields[k]
		if !ok {
			return fmt.Errorf("unknown field %q%s", path+k, caseHint(k, fields))
		}
		if err := checkKeys(raw, ft, path+k+"."); err != nil {
			return err
		}
	}
	return nil
}

func checkSlice(data []byte, t reflect.Type, path string) error {
	if data[0] != '[' {
		return nil
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(data, &arr); err != nil {
		return fmt.Errorf("invalid JSON at %q: %w", path, err)
	}
	for i, raw := range arr {
		if err := checkKeys(raw, t.Elem(), fmt.Sprintf("%s[%d].", strings.TrimSuffix(path, "."), i)); err != nil {
			return err
		}
	}
	return nil
}

func checkMap(data []byte, t reflect.Type, path string) error {
	if data[0] != '{' {
		return nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(data, &obj); err != nil {
		return fmt.Errorf("invalid JSON at %q: %w", path, err)
	}
	for k, raw := range obj {
		if err := checkKeys(raw, t.Elem(), path+k+"."); err != nil {
			return err
		}
	}
	return nil
}

// jsonFields maps exact json names to field types (embedded structs are
// not used by the wire types in this package).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := make(map[string]reflect.Type, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" || !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

func caseHint(k string, fields map[string]reflect.Type) string {
	norm := func(s string) string { return strings.ToLower(strings.ReplaceAll(s, "_", "")) }
	for name := range fields {
		if norm(name) == norm(k) {
			return fmt.Sprintf(" (did you mean %q?)", name)
		}
	}
	return ""
}
