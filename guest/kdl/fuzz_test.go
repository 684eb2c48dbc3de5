package kdl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// maxFuzzInput bounds fuzzed documents. The agent parses a repository's
// .solstice/workflow.kdl, a hand-written file of a few kilobytes; bigger
// inputs only slow the fuzzer down.
const maxFuzzInput = 64 << 10

// kdlSeeds cover the grammar; FuzzParse adds every input and expected
// file of the KDL conformance suite (shared/conformance/kdl) too. Those
// are read from the suite rather than copied into testdata: the suite is
// CC BY-SA, and it is required anyway (TestConformance).
var kdlSeeds = []string{
	"",
	"\ufeffnode\n",
	`workflow name="CI" {
  job id="illumos-build" runs_on="illumos-latest" {
    setup path=".solstice/setup-illumos.sh"
    step name="Build" run="cargo build --workspace"
  }
}`,
	`(type)node 1 -2.5e10 0x_ff 0o17 0b1010 #true #false #null #inf #-inf #nan key=(t)"v" "quoted \u{1F600}\t\"" {
    child; other /- skipped "arg" /-key=1
    /- gone { deep }
}`,
	"node #\"raw \"quoted\" string\"# ##\"more\"##\n",
	"node \"\"\"\n    multi\n      line\n    \"\"\"\n",
	"node #\"\"\"\n  raw\n  multi\n  \"\"\"#\n",
	"node \\ // continued\n  arg /* block /* nested */ */ \\\n  2\n",
	"a; b; c { d; e { f } }\r\ng\u2028h\u000Bi\n",
	"node 123456789012345678901234567890123456789 1.000_000e-0100 -0.0\n",
	"node \"\\   \n  whitespace escape\" \"\\u{10FFFF}\"\n",
	strings.Repeat("a {", 1001) + strings.Repeat("}", 1001),
}

// FuzzParse parses a document and checks that Format prints it in a
// canonical form: the printed text parses, and prints the same again.
func FuzzParse(f *testing.F) {
	for _, s := range kdlSeeds {
		f.Add(s)
	}
	for _, s := range conformanceSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		if len(src) > maxFuzzInput {
			return
		}
		doc, err := ParseString(src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %v is %T, want *kdl.Error", err, err)
			}
			return
		}
		out := Format(doc)
		again, err := ParseString(out)
		if err != nil {
			t.Fatalf("Format printed text that does not parse: %v\ninput: %q\nprinted: %q", err, src, out)
		}
		if out2 := Format(again); out2 != out {
			t.Fatalf("Format is not canonical:\ninput: %q\nfirst: %q\nsecond: %q", src, out, out2)
		}
		visit(doc.Nodes)
	})
}

// visit calls the accessors the workflow decoder uses on every value.
func visit(nodes []*Node) {
	for _, n := range nodes {
		for i := range n.Args {
			v, _ := n.Arg(i)
			useValue(v)
		}
		for _, p := range n.Props {
			v, _ := n.Prop(p.Name)
			useValue(v)
		}
		n.Child(n.Name)
		n.ChildrenNamed(n.Name)
		visit(n.Children)
	}
}

func useValue(v Value) {
	v.AsString()
	v.AsInt()
	v.AsInt64()
	v.AsFloat64()
	v.Decimal()
	v.AsBool()
	_ = v.String()
}

// conformanceSeeds returns the suite's inputs and expected outputs.
func conformanceSeeds(f *testing.F) []string {
	var out []string
	for _, sub := range []string{"input", "expected_kdl"} {
		files, err := filepath.Glob(filepath.Join(suiteDir(f), "tests", "test_cases", sub, "*.kdl"))
		if err != nil || len(files) == 0 {
			f.Fatalf("no KDL conformance files in %s (%v)", sub, err)
		}
		for _, name := range files {
			b, err := os.ReadFile(name)
			if err != nil {
				f.Fatal(err)
			}
			out = append(out, string(b))
		}
	}
	return out
}
