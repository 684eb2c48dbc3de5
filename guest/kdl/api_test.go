package kdl

import (
	"math"
	"math/big"
	"strings"
	"testing"
)

const apiDoc = `// a workflow-like document
(ci)workflow "CI" retries=3 name="first" name=#"second"# {
    job id=build big=0xFFFF_FFFF_FFFF_FFFF_FF ratio=(f64)2.5e-3 on=#true off=#null {
        step """
            make
            make test
            """ /- "dropped" low=#-inf
    }
    job id=test
}
`

func mustParse(t *testing.T, s string) *Document {
	t.Helper()
	doc, err := ParseString(s)
	if err != nil {
		t.Fatalf("ParseString: %v", err)
	}
	return doc
}

func TestAPINodes(t *testing.T) {
	doc := mustParse(t, apiDoc)
	if len(doc.Nodes) != 1 {
		t.Fatalf("got %d top-level nodes, want 1", len(doc.Nodes))
	}
	wf := doc.Nodes[0]
	if wf.Name != "workflow" || wf.Type == nil || *wf.Type != "ci" {
		t.Errorf("node = (%v)%q, want (ci)workflow", wf.Type, wf.Name)
	}
	if wf.Pos != (Pos{Line: 2, Col: 1}) {
		t.Errorf("workflow Pos = %+v, want 2:1", wf.Pos)
	}
	if a, ok := wf.Arg(0); !ok || a.String() != "CI" {
		t.Errorf("Arg(0) = %v, %v; want CI", a, ok)
	}
	if _, ok := wf.Arg(1); ok {
		t.Error("Arg(1) exists, want only one argument")
	}
	if got := len(wf.ChildrenNamed("job")); got != 2 {
		t.Errorf("ChildrenNamed(job) = %d nodes, want 2", got)
	}
	if wf.Child("nope") != nil {
		t.Error("Child(nope) != nil")
	}
	if step := wf.Child("job").Child("step"); step == nil || len(step.Args) != 1 {
		t.Fatalf("step = %+v, want one argument (the other is slashdashed)", step)
	}
}

func TestAPIProps(t *testing.T) {
	wf := mustParse(t, apiDoc).Nodes[0]
	var names []string
	for _, p := range wf.Props {
		names = append(names, p.Name)
	}
	// name= appears twice: listed once, where it first appears, with the
	// rightmost value and position.
	if got := strings.Join(names, ","); got != "retries,name" {
		t.Errorf("prop order = %s, want retries,name", got)
	}
	if v, _ := wf.Prop("name"); v.String() != "second" || v.Pos != (Pos{Line: 2, Col: 47}) {
		t.Errorf("name = %v at %+v, want second at 2:47", v, v.Pos)
	}
	if wf.Props[1].Pos != (Pos{Line: 2, Col: 42}) {
		t.Errorf("name key Pos = %+v, want 2:42", wf.Props[1].Pos)
	}
	if n, ok := mustProp(t, wf, "retries").AsInt64(); !ok || n != 3 {
		t.Errorf("retries = %d, %v; want 3", n, ok)
	}
	if _, ok := wf.Prop("missing"); ok {
		t.Error(`Prop("missing") found`)
	}
}

func mustProp(t *testing.T, n *Node, name string) Value {
	t.Helper()
	v, ok := n.Prop(name)
	if !ok {
		t.Fatalf("node %s has no property %s", n.Name, name)
	}
	return v
}

func TestAPIValues(t *testing.T) {
	job := mustParse(t, apiDoc).Nodes[0].Child("job")
	big1 := mustProp(t, job, "big")
	want, _ := new(big.Int).SetString("FFFFFFFFFFFFFFFFFF", 16)
	if got, ok := big1.AsInt(); !ok || got.Cmp(want) != 0 {
		t.Errorf("big = %v, want %v", got, want)
	}
	if _, ok := big1.AsInt64(); ok {
		t.Error("big fits in int64?")
	}
	ratio := mustProp(t, job, "ratio")
	if f, ok := ratio.AsFloat64(); !ok || f != 2.5e-3 || *ratio.Type != "f64" {
		t.Errorf("ratio = %v (%v), want (f64)0.0025", f, ratio.Type)
	}
	if d, _ := ratio.Decimal(); d != "2.5E-3" {
		t.Errorf("ratio.Decimal() = %q, want 2.5E-3", d)
	}
	if b, ok := mustProp(t, job, "on").AsBool(); !ok || !b {
		t.Error("on != #true")
	}
	if !mustProp(t, job, "off").IsNull() {
		t.Error("off is not #null")
	}
	if _, ok := mustProp(t, job, "off").AsString(); ok {
		t.Error("#null is a string?")
	}
	step := job.Child("step")
	if s, _ := step.Args[0].AsString(); s != "make\nmake test" {
		t.Errorf("multi-line step = %q", s)
	}
	if f, _ := mustProp(t, step, "low").AsFloat64(); !math.IsInf(f, -1) {
		t.Errorf("#-inf = %v", f)
	}
}

func TestFormatBuiltDocument(t *testing.T) {
	typ := "u8"
	f, err := FloatValue("1_000.50e3")
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{Name: "a b", Args: []Value{
		StringValue("tab\there \"q\" \\ nel\u0085 bom\uFEFF"),
		StringValue("true"), StringValue("-1x"), StringValue(".md"), StringValue(""),
		{Type: &typ, Kind: KindInt}, Int64Value(-7), f, Float64Value(0.5), Float64Value(math.NaN()),
	}, Props: []Prop{{Name: "z", Value: BoolValue(false)}, {Name: "a", Value: NullValue()}, {Name: "z", Value: BoolValue(true)}}}
	n.Children = []*Node{{Name: "kid"}}
	got := Format(&Document{Nodes: []*Node{n}})
	want := `"a b" "tab\there \"q\" \\ nel\u{85} bom\u{feff}" "true" "-1x" .md "" (u8)0 -7 1000.50E+3 5.0E-1 #nan a=#null z=#true {` +
		"\n    kid\n}\n"
	if got != want {
		t.Errorf("Format\n got  %q\n want %q", got, want)
	}
	// What Format prints must parse back to the same document.
	if again := Format(mustParse(t, got)); again != got {
		t.Errorf("round trip changed the document:\n%s\n%s", got, again)
	}
}

func TestSetProp(t *testing.T) {
	n := &Node{Name: "n"}
	n.SetProp("a", Int64Value(1))
	n.SetProp("b", Int64Value(2))
	n.SetProp("a", Int64Value(3))
	if got := Format(&Document{Nodes: []*Node{n}}); got != "n a=3 b=2\n" {
		t.Errorf("got %q", got)
	}
}

func TestFloatValueRejectsJunk(t *testing.T) {
	if _, err := FloatValue("1.2.3"); err == nil {
		t.Error("FloatValue(1.2.3) succeeded")
	}
	if v, err := FloatValue("2"); err != nil || v.String() != "2.0" {
		t.Errorf("FloatValue(2) = %v, %v; want 2.0", v, err)
	}
}

func TestValueConstructors(t *testing.T) {
	huge, _ := new(big.Int).SetString("-123456789012345678901234567890", 10)
	tests := []struct {
		v       Value
		kind    string
		text    string
		float   float64
		isFloat bool
	}{
		{StringValue("a b"), "string", `"a b"`, 0, false},
		{IntValue(huge), "integer", "-123456789012345678901234567890", -1.2345678901234568e29, true},
		{Int64Value(42), "integer", "42", 42, true},
		{Float64Value(1e10), "float", "1.0E+10", 1e10, true},
		{Float64Value(-0.25), "float", "-2.5E-1", -0.25, true},
		{Float64Value(3), "float", "3.0", 3, true},
		{Float64Value(math.Inf(1)), "float", "#inf", math.Inf(1), true},
		{Float64Value(math.Inf(-1)), "float", "#-inf", math.Inf(-1), true},
		{BoolValue(true), "boolean", "#true", 0, false},
		{NullValue(), "null", "#null", 0, false},
		{Value{}, "null", "#null", 0, false},
	}
	for _, tt := range tests {
		if got := tt.v.Kind.String(); got != tt.kind {
			t.Errorf("%s: Kind = %s, want %s", tt.text, got, tt.kind)
		}
		if got := tt.v.String(); got != tt.text {
			t.Errorf("String() = %s, want %s", got, tt.text)
		}
		if f, ok := tt.v.AsFloat64(); ok != tt.isFloat || f != tt.float {
			t.Errorf("%s: AsFloat64 = %v, %v; want %v, %v", tt.text, f, ok, tt.float, tt.isFloat)
		}
	}
	if f, _ := Float64Value(math.NaN()).AsFloat64(); !math.IsNaN(f) {
		t.Errorf("NaN round trip gave %v", f)
	}
	if got := Kind(99).String(); got != "Kind(99)" {
		t.Errorf("Kind(99) = %s", got)
	}
	// IntValue copies, so the caller may reuse its big.Int.
	n := big.NewInt(1)
	v := IntValue(n)
	n.SetInt64(2)
	if i, _ := v.AsInt64(); i != 1 {
		t.Errorf("IntValue aliases its argument: %d", i)
	}
	if _, ok := StringValue("x").AsInt(); ok {
		t.Error("a string is an int?")
	}
	if d, ok := doubleParse(t, "1.23E+1000"); !ok || d != "1.23E+1000" {
		t.Errorf("Decimal = %q, %v", d, ok)
	}
}

// doubleParse parses "n <literal>" and returns the argument's Decimal.
func doubleParse(t *testing.T, literal string) (string, bool) {
	t.Helper()
	return mustParse(t, "n "+literal).Nodes[0].Args[0].Decimal()
}
