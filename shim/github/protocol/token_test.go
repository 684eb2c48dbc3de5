package protocol

import (
	"encoding/json"
	"reflect"
	"testing"
)

func TestTemplateTokenForms(t *testing.T) {
	for _, tc := range []struct {
		in       string
		typ      TokenType
		text     string
		roundTrp string
	}{
		{`"echo hi"`, TokenString, "echo hi", `"echo hi"`},
		{`true`, TokenBoolean, "true", `true`},
		{`10`, TokenNumber, "10", `10`},
		{`1.5`, TokenNumber, "1.5", `1.5`},
		{`null`, TokenNull, "", `null`},
		{`{"lit":"no type"}`, TokenString, "no type", `"no type"`},
		{`{"type":0,"file":1,"line":3,"col":7,"lit":"x"}`, TokenString, "x", `{"type":0,"file":1,"line":3,"col":7,"lit":"x"}`},
		{`{"type":3,"expr":"matrix.os"}`, TokenBasicExpression, "${{ matrix.os }}", `{"type":3,"expr":"matrix.os"}`},
		{`{"type":4,"directive":"insert"}`, TokenInsertExpression, "${{ insert }}", `{"type":4,"directive":"insert"}`},
		{`{"type":5,"line":2,"bool":true}`, TokenBoolean, "true", `{"type":5,"line":2,"bool":true}`},
		{`{"type":6,"num":2}`, TokenNumber, "2", `2`},
		{`{"type":7}`, TokenNull, "", `null`},
		{`{"type":1,"seq":["a",{"type":3,"expr":"x"}]}`, TokenSequence, "", `{"type":1,"seq":["a",{"type":3,"expr":"x"}]}`},
		{`{"type":2,"map":[{"Key":"k","Value":"v"}]}`, TokenMapping, "", `{"type":2,"map":[{"Key":"k","Value":"v"}]}`},
	} {
		var tok TemplateToken
		if err := json.Unmarshal([]byte(tc.in), &tok); err != nil {
			t.Fatalf("%s: %v", tc.in, err)
		}
		if tok.Type != tc.typ || tok.Text() != tc.text {
			t.Errorf("%s: type %d text %q", tc.in, tok.Type, tok.Text())
		}
		out, err := json.Marshal(tok)
		if err != nil || string(out) != tc.roundTrp {
			t.Errorf("%s: marshal %s %v, want %s", tc.in, out, err, tc.roundTrp)
		}
	}
	var bad TemplateToken
	for _, in := range []string{`{"type":"x"}`, `{"type":9}`, `[1]`} {
		if err := json.Unmarshal([]byte(in), &bad); err == nil {
			t.Errorf("%s accepted", in)
		}
	}
}

func TestStepTokens(t *testing.T) {
	m := jobMessage(t, "https://r/", "https://res/", "")
	s := m.Steps[0]
	script, ok := s.Inputs.Lookup("script")
	if !ok || script.Text() != "echo hi\nuname -a" || *script.Line != 12 || *script.Col != 14 {
		t.Fatalf("script input %+v", script)
	}
	if wd, _ := s.Inputs.Lookup("workingDirectory"); wd.Text() != "${{ github.workspace }}" || !wd.IsExpression() {
		t.Errorf("workingDirectory %+v", wd)
	}
	var env [][2]string
	for _, kv := range s.Environment.Mapping() {
		env = append(env, [2]string{kv.Key, kv.Value.Text()})
	}
	if want := [][2]string{{"A", "1"}, {"B", "${{ matrix.os }}"}}; !reflect.DeepEqual(env, want) {
		t.Errorf("env %v", env)
	}
	if s.DisplayNameToken.Text() != "${{ format('Run {0}', matrix.os) }}" || s.ContinueOnError.Text() != "false" || s.TimeoutInMinutes.Text() != "10" {
		t.Errorf("step tokens %+v", s)
	}
	run, _ := m.Defaults[0].Lookup("run")
	if shell, _ := run.Lookup("shell"); shell.Text() != "bash" {
		t.Errorf("defaults %+v", m.Defaults)
	}
}

func TestContextData(t *testing.T) {
	m := jobMessage(t, "https://r/", "https://res/", "")
	got := m.ContextData["github"].Value()
	want := map[string]any{"repository": "o/r", "run_number": 12.0,
		"event": map[string]any{"forced": false, "commits": []any{"c1", "c2"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("github context %#v", got)
	}
	if v, ok := m.ContextData["matrix"].Lookup("OS"); !ok || v.Value() != "illumos" {
		t.Errorf("matrix lookup %v %v", v, ok)
	}
	if m.ContextData["inputs"].Value() != nil {
		t.Error("null context should be nil")
	}
	cs := `{"t":5,"d":[{"k":"Path","v":"x"}]}`
	var d ContextData
	if err := json.Unmarshal([]byte(cs), &d); err != nil {
		t.Fatal(err)
	}
	if _, ok := d.Lookup("path"); ok {
		t.Error("case-sensitive dictionary matched case-insensitively")
	}
	for _, in := range []string{`{"t":2,"d":[{"k":"a","v":{"t":1,"a":[1,true,null]}}]}`, `{"t":4,"n":1.5}`, `"s"`} {
		var d ContextData
		if err := json.Unmarshal([]byte(in), &d); err != nil {
			t.Fatal(err)
		}
		out, _ := json.Marshal(d)
		var again ContextData
		if err := json.Unmarshal(out, &again); err != nil || !reflect.DeepEqual(d.Value(), again.Value()) {
			t.Errorf("round trip %s -> %s", in, out)
		}
	}
}
