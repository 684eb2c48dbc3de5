package kdl

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestConformance runs the official KDL test suite (kdl-org/kdl
// tests/test_cases), kept outside this repository under
// shared/conformance/kdl. Inputs named *_fail.kdl must be rejected with a
// positioned *Error; every other input must parse and print exactly as its
// expected_kdl file.
func TestConformance(t *testing.T) {
	cases := filepath.Join(suiteDir(t), "tests", "test_cases")
	entries, err := os.ReadDir(filepath.Join(cases, "input"))
	if err != nil {
		t.Fatalf("reading the KDL suite: %v", err)
	}
	var passed, failed int
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".kdl") {
			continue
		}
		if t.Run(strings.TrimSuffix(name, ".kdl"), func(t *testing.T) { runCase(t, cases, name) }) {
			passed++
		} else {
			failed++
		}
	}
	if passed+failed == 0 {
		t.Fatalf("no test cases in %s", cases)
	}
	t.Logf("KDL conformance: %d passed, %d failed of %d", passed, failed, passed+failed)
}

func runCase(t *testing.T, cases, name string) {
	input, err := os.ReadFile(filepath.Join(cases, "input", name))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := ParseString(string(input))
	if strings.HasSuffix(name, "_fail.kdl") {
		var perr *Error
		switch {
		case err == nil:
			t.Fatalf("parsed, want an error; got:\n%s", Format(doc))
		case !errors.As(err, &perr):
			t.Fatalf("error %v is %T, want *kdl.Error", err, err)
		case perr.Line < 1 || perr.Column < 1:
			t.Fatalf("error %q has position %d:%d, want line and column >= 1", err, perr.Line, perr.Column)
		}
		return
	}
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	want, err := os.ReadFile(filepath.Join(cases, "expected_kdl", name))
	if err != nil {
		t.Fatal(err)
	}
	if got := Format(doc); got != string(want) {
		t.Errorf("Format mismatch\ninput:\n%s\ngot:\n%q\nwant:\n%q", input, got, want)
	}
}

// TestConformanceExpectedIsCanonical checks Format against itself: the
// suite's expected files are canonical, so parsing and printing one must
// give it back unchanged.
func TestConformanceExpectedIsCanonical(t *testing.T) {
	dir := filepath.Join(suiteDir(t), "tests", "test_cases", "expected_kdl")
	files, err := filepath.Glob(filepath.Join(dir, "*.kdl"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no expected files in %s (%v)", dir, err)
	}
	for _, f := range files {
		want, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		doc, err := ParseString(string(want))
		if err != nil {
			t.Errorf("%s: %v", filepath.Base(f), err)
			continue
		}
		if got := Format(doc); got != string(want) {
			t.Errorf("%s: Format gave %q, want %q", filepath.Base(f), got, want)
		}
	}
}

// suiteDir finds shared/conformance/kdl: $SOLSTICE_SHARED/conformance/kdl
// if set, else the nearest shared/conformance/kdl walking up from the
// working directory (the repository and shared/ are siblings, here and in
// CI). A missing suite fails the test: skipping would hide a regression.
func suiteDir(t testing.TB) string {
	t.Helper()
	if shared := os.Getenv("SOLSTICE_SHARED"); shared != "" {
		dir := filepath.Join(shared, "conformance", "kdl")
		if _, err := os.Stat(dir); err != nil {
			t.Fatalf("SOLSTICE_SHARED=%s: KDL suite not found: %v", shared, err)
		}
		return dir
	}
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		cand := filepath.Join(dir, "shared", "conformance", "kdl")
		if fi, err := os.Stat(cand); err == nil && fi.IsDir() {
			return cand
		}
		if filepath.Dir(dir) == dir {
			break
		}
	}
	t.Fatalf("KDL conformance suite not found: no shared/conformance/kdl in %s or any parent, and SOLSTICE_SHARED is not set", wd)
	return ""
}
