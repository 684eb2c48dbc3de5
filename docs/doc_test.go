// Package docs_test keeps the documentation true: every command line in
// README.md and docs/*.md (fenced shell blocks and inline code spans that
// start with solstice or nomad) is checked against the real CLIs, every
// HCL block is parsed (and the driver's plugin and task blocks decoded
// against its schemas), every repository path and relative link must
// exist, and every <!-- tested-by: TestX --> annotation must name a test
// of this repository. Cheap commands (help, version, validate on the
// repository's own files) run for real.
package docs_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// checker holds what the checks compare the docs against.
type checker struct {
	root     string
	solstice solsticeChecker
	nomad    *nomadChecker // nil when no Nomad binary is at hand
	tests    map[string]bool
	targets  map[string]bool
	metrics  map[string]bool // the Prometheus metrics the shims register
}

var (
	once    sync.Once
	shared  *checker
	initErr error
	tmpDir  string // the solstice build, removed by TestMain
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpDir != "" {
		os.RemoveAll(tmpDir)
	}
	os.Exit(code)
}

// newChecker builds the solstice CLI from this tree (so the docs are
// checked against the code, not a stale bin/) and finds the Nomad binary.
func newChecker(t *testing.T) *checker {
	t.Helper()
	once.Do(func() { shared, initErr = setup() })
	if initErr != nil {
		t.Fatal(initErr)
	}
	return shared
}

func setup() (*checker, error) {
	root, err := filepath.Abs("..")
	if err != nil {
		return nil, err
	}
	if tmpDir, err = os.MkdirTemp("", "solstice-doctest-"); err != nil {
		return nil, err
	}
	bin := filepath.Join(tmpDir, "solstice")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	build := exec.CommandContext(ctx, goBinary(), "build", "-o", bin, "./shim/cmd/solstice")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build solstice: %v\n%s", err, out)
	}
	c := &checker{root: root, solstice: solsticeChecker{newTool(bin, root)}}
	if n := nomadBinary(root); n != "" {
		c.nomad = &nomadChecker{newTool(n, root)}
	}
	if c.tests, err = testFuncs(root); err != nil {
		return nil, err
	}
	if c.targets, err = makeTargets(root); err != nil {
		return nil, err
	}
	if c.metrics, err = metricNames(root); err != nil {
		return nil, err
	}
	return c, nil
}

func goBinary() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// nomadBinary is $SOLSTICE_NOMAD (make test sets it), else the cached
// build.
func nomadBinary(root string) string {
	for _, p := range []string{os.Getenv("SOLSTICE_NOMAD"), filepath.Join(root, ".cache/tools/nomad-1.6.3/nomad")} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

var testFuncRe = regexp.MustCompile(`(?m)^func (Test\w+)\(`)

// testFuncs lists every test function of the repository.
func testFuncs(root string) (map[string]bool, error) {
	tests := map[string]bool{}
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		switch {
		case err != nil:
			return err
		case d.IsDir() && (d.Name() == ".cache" || d.Name() == ".git" || d.Name() == "tools") && p != root:
			return filepath.SkipDir
		case d.IsDir() || !strings.HasSuffix(p, "_test.go"):
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range testFuncRe.FindAllSubmatch(b, -1) {
			tests[string(m[1])] = true
		}
		return nil
	})
	return tests, err
}

var metricRe = regexp.MustCompile(`solstice_(?:forgejo|github)_[a-z_]+`)

// metricNames lists the metric names the shims' code registers.
func metricNames(root string) (map[string]bool, error) {
	names := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(root, "shim"), func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range metricRe.FindAll(b, -1) {
			names[string(m)] = true
		}
		return nil
	})
	return names, err
}

var targetRe = regexp.MustCompile(`(?m)^([a-z][a-zA-Z_-]+):`)

func makeTargets(root string) (map[string]bool, error) {
	b, err := os.ReadFile(filepath.Join(root, "GNUmakefile"))
	if err != nil {
		return nil, err
	}
	targets := map[string]bool{}
	for _, m := range targetRe.FindAllSubmatch(b, -1) {
		targets[string(m[1])] = true
	}
	return targets, nil
}

// docFiles are the Markdown files the test keeps true, relative to root.
func docFiles(root string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		return nil, err
	}
	out := []string{"README.md"}
	for _, f := range files {
		rel, _ := filepath.Rel(root, f)
		out = append(out, rel)
	}
	return out, nil
}

func TestDocs(t *testing.T) {
	c := newChecker(t)
	files, err := docFiles(c.root)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(c.root, f))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range c.checkFile(f, string(b)) {
				t.Error(p)
			}
		})
	}
}

// TestNomadAtHand says when nomad command lines went unchecked: without a
// Nomad binary TestDocs checks everything else, and this test is skipped
// (make test builds Nomad and sets SOLSTICE_NOMAD).
func TestNomadAtHand(t *testing.T) {
	if newChecker(t).nomad == nil {
		t.Skip("no Nomad binary (SOLSTICE_NOMAD unset, no .cache build): the docs' nomad command lines were NOT checked")
	}
}

// TestClientExample decodes the example client configuration the docs
// point operators to, as the driver would.
func TestClientExample(t *testing.T) {
	c := newChecker(t)
	const f = "jobspecs/client.hcl"
	b, err := os.ReadFile(filepath.Join(c.root, f))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range checkHCL(f, 1, string(b)) {
		t.Errorf("%s: %s", f, p)
	}
	// The OmniOS entry ships without its checksum: the driver must refuse
	// the placeholder rather than download an unchecked image.
	cfg, err := pluginConfig(f, string(b))
	if err != nil {
		t.Fatal(err)
	}
	for label, img := range cfg.Images {
		if strings.Contains(img.SHA256, placeholderMark) && cfg.Broken[label] == nil {
			t.Errorf("%s: image %q has the placeholder checksum %q, and the driver accepts it", f, label, img.SHA256)
		}
	}
}

// checkFile returns every problem of one Markdown file, each as
// "file:line: what".
func (c *checker) checkFile(file, text string) []string {
	var problems []string
	for _, s := range parseMarkdown(file, text) {
		for _, name := range s.testedBy {
			if !c.tests[name] {
				problems = append(problems, fmt.Sprintf("%s:%d: tested-by names %s, which is no test function of this repository", file, s.markLine, name))
			}
		}
		if s.lang == "hcl" {
			for _, p := range checkHCL(file, s.line, s.text) {
				problems = append(problems, fmt.Sprintf("%s: %s", s.at(0), p))
			}
			continue
		}
		if f := strings.Fields(s.text); s.lang == "inline" && (len(f) == 0 || !isCLI(f[0])) {
			continue // prose: only spans that are command lines
		}
		cmds, err := s.commands()
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		for _, cmd := range cmds {
			for _, p := range c.checkCommand(cmd.words) {
				problems = append(problems, fmt.Sprintf("%s: %s", cmd.at, p))
			}
		}
	}
	problems = append(problems, c.checkMetrics(file, text)...)
	return append(problems, c.checkPaths(file, text)...)
}

// checkMetrics checks that every shim metric the docs name exists.
func (c *checker) checkMetrics(file, text string) []string {
	var problems []string
	for i, line := range strings.Split(text, "\n") {
		for _, m := range metricRe.FindAllString(line, -1) {
			if !c.metrics[m] {
				problems = append(problems, fmt.Sprintf("%s:%d: metric %s is not registered by the shims' code", file, i+1, m))
			}
		}
	}
	return problems
}

func isCLI(w string) bool {
	return w == "solstice" || w == "nomad" || strings.HasSuffix(w, "/solstice")
}

func (c *checker) checkCommand(words []string) []string {
	switch name := words[0]; {
	case name == "solstice" || strings.HasSuffix(name, "/solstice"):
		return c.solstice.check(words[1:])
	case name == "nomad":
		if c.nomad == nil {
			return nil // reported once by TestDocs
		}
		return c.nomad.check(words[1:])
	case name == "make":
		var problems []string
		for _, w := range words[1:] {
			if !strings.HasPrefix(w, "-") && !strings.Contains(w, "=") && !c.targets[w] {
				problems = append(problems, fmt.Sprintf("make: GNUmakefile has no target %q", w))
			}
		}
		return problems
	}
	return nil
}

var (
	// repoPathRe finds paths into this repository written in prose or
	// code: a top-level directory followed by at least one more element.
	repoPathRe = regexp.MustCompile(`(?:^|[\s(\x60"'\[])((?:jobspecs|docs|examples|scripts|testimage|driver|shim|guest|internal|e2e|tools)/[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*)`)
	linkRe     = regexp.MustCompile(`\]\(([^)\s]+)\)`)
)

// checkPaths checks that every repository path and relative link exists.
func (c *checker) checkPaths(file, text string) []string {
	var problems []string
	for i, line := range strings.Split(text, "\n") {
		at := fmt.Sprintf("%s:%d", file, i+1)
		for _, m := range repoPathRe.FindAllStringSubmatch(line, -1) {
			p := strings.TrimRight(m[1], ".,:;")
			if _, err := os.Stat(filepath.Join(c.root, p)); err != nil {
				problems = append(problems, fmt.Sprintf("%s: %s does not exist in the repository", at, p))
			}
		}
		for _, m := range linkRe.FindAllStringSubmatch(line, -1) {
			target, _, _ := strings.Cut(m[1], "#")
			if target == "" || strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			if _, err := os.Stat(filepath.Join(c.root, filepath.Dir(file), target)); err != nil {
				problems = append(problems, fmt.Sprintf("%s: link target %s does not exist", at, m[1]))
			}
		}
	}
	return problems
}

// TestDocCheckCatchesDrift feeds the checker a page with one mistake of
// each kind and expects each to be reported at its line: the doc test is
// only worth having if it fails when a doc drifts.
func TestDocCheckCatchesDrift(t *testing.T) {
	c := newChecker(t)
	if c.nomad == nil {
		t.Skip("no Nomad binary: set SOLSTICE_NOMAD")
	}
	page := strings.Join([]string{
		"# drift",                           // 1
		"```sh",                             // 2
		"solstice jobs sync --no-such-flag", // 3
		"solstice image frobnicate",         // 4
		"bin/solstice run examples/hello.yml --job build", // 5
		"nomad job runn jobspecs/labels",                  // 6
		"nomad alloc logs -no-such-flag ALLOC",            // 7
		"solstice nosuchcommand",                          // 8
		"make no-such-target",                             // 9
		"```",                                             // 10
		"See jobspecs/acl/nothing.hcl and [x](gone.md).",  // 11
		"<!-- tested-by: TestNoSuchTestAnywhere -->",      // 12
		"```hcl",                   // 13
		`plugin "solstice-vm" {`,   // 14
		"  config {",               // 15
		`    accelerator = "warp"`, // 16
		"  }",                      // 17
		"}",                        // 18
		"```",                      // 19
		"Run `solstice forgejo run --capacityy 2` now.", // 20
		"```hcl",                             // 21
		"job \"x\" {",                        // 22
		"```",                                // 23
		"Alert on `solstice_forgejo_taskz`.", // 24
	}, "\n")
	got := c.checkFile("docs/drift.md", page)
	want := [][2]string{ // where, and what the report says
		{"docs/drift.md:3:", "solstice jobs sync: no flag --no-such-flag"},
		{"docs/drift.md:4:", `solstice image: no subcommand "frobnicate"`},
		{"docs/drift.md:5:", "solstice run: flag --job comes after the argument"},
		{"docs/drift.md:6:", `nomad job: no subcommand "runn"`},
		{"docs/drift.md:7:", "nomad alloc logs: no flag -no-such-flag"},
		{"docs/drift.md:8:", `solstice: no command "nosuchcommand"`},
		{"docs/drift.md:9:", `make: GNUmakefile has no target "no-such-target"`},
		{"docs/drift.md:11:", "jobspecs/acl/nothing.hcl does not exist"},
		{"docs/drift.md:11:", "link target gone.md does not exist"},
		{"docs/drift.md:12:", "tested-by names TestNoSuchTestAnywhere"},
		{"docs/drift.md:14:", `accelerator = "warp": must be auto, kvm or tcg`},
		{"docs/drift.md:20:", "solstice forgejo run: no flag --capacityy"},
		{"docs/drift.md:22:", "Argument or block definition required"},
		{"docs/drift.md:24:", "metric solstice_forgejo_taskz is not registered"},
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w[0]) && strings.Contains(g, w[1]) }) {
			t.Errorf("the checker did not report %q at %s; it reported:\n%s", w[1], w[0], strings.Join(got, "\n"))
		}
	}
	if len(got) != len(want) {
		t.Errorf("the checker reported %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
}
