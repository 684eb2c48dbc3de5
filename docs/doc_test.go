// Package docs_test keeps the documentation true: every command line in
// README.md and docs/*.md (fenced shell blocks and inline code spans that
// start with solstice or nomad) is checked against the real CLIs, every
// HCL block is parsed (and the driver's plugin and task blocks decoded
// against its schemas), every repository path and relative link must
// exist, and every <!-- tested-by: TestX --> annotation must name a test
// of this repository. Cheap commands (help, version, validate on the
// repository's own files) run for real.
//
// Syntax alone does not keep a command true, so every fenced shell block
// with a solstice, nomad or make command must be run by this test (every
// such command in it is cheap), or name the tests that run it
// (<!-- tested-by: TestA, TestB -->), or say why nothing runs it
// (<!-- not-run: reason -->).
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
	var total tally
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(c.root, f))
			if err != nil {
				t.Fatal(err)
			}
			problems, n := c.check(f, string(b))
			for _, p := range problems {
				t.Error(p)
			}
			total.add(n)
		})
	}
	t.Logf("command blocks: %d run by this test, %d tested-by, %d not-run", total.ran, total.testedBy, len(total.notRun))
	for _, r := range total.notRun {
		t.Logf("not-run %s", r)
	}
}

// A tally counts how the fenced command blocks are kept true.
type tally struct {
	ran, testedBy int
	notRun        []string // file:line: reason
}

func (t *tally) add(o tally) {
	t.ran += o.ran
	t.testedBy += o.testedBy
	t.notRun = append(t.notRun, o.notRun...)
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
	problems, _ := c.check(file, text)
	return problems
}

// check returns every problem of one Markdown file and how its command
// blocks are kept true.
func (c *checker) check(file, text string) ([]string, tally) {
	var problems []string
	var n tally
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
		clis, ranAll := 0, true
		for _, cmd := range cmds {
			ps, ran := c.checkCommand(cmd.words)
			for _, p := range ps {
				problems = append(problems, fmt.Sprintf("%s: %s", cmd.at, p))
			}
			if isCLI(cmd.words[0]) || cmd.words[0] == "make" {
				clis, ranAll = clis+1, ranAll && ran
			}
		}
		if s.lang != "inline" && clis > 0 {
			problems = append(problems, s.coverage(ranAll, &n)...)
		}
	}
	problems = append(problems, strayAnnotations(file, text)...)
	problems = append(problems, c.checkMetrics(file, text)...)
	return append(problems, c.checkPaths(file, text)...), n
}

// coverage checks that a fenced block of commands is run by some test
// (here when ranHere, or by those its tested-by names) or says why not,
// and counts it in n.
func (s snippet) coverage(ranHere bool, n *tally) []string {
	at := fmt.Sprintf("%s:%d", s.file, s.line-1) // the opening fence
	switch {
	case len(s.testedBy) > 0 && s.notRun != "":
		return []string{fmt.Sprintf("%s: the block is both tested-by %s and not-run (%s): keep the one that is true", at, strings.Join(s.testedBy, ", "), s.notRun)}
	case ranHere && s.notRun != "":
		return []string{fmt.Sprintf("%s: the block is not-run (%s), but the doc test runs every command in it: drop the annotation", at, s.notRun)}
	case ranHere:
		n.ran++
	case len(s.testedBy) > 0:
		n.testedBy++
	case s.notRun != "":
		n.notRun = append(n.notRun, fmt.Sprintf("%s: %s", at, s.notRun))
	default:
		return []string{fmt.Sprintf("%s: no test runs the commands of this block: make them cheap enough for the doc test, name the tests that run them (<!-- tested-by: TestX -->), or say why none does (<!-- not-run: reason -->)", at)}
	}
	return nil
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

// checkCommand returns what is wrong with one command line, and whether
// it ran the line for real.
func (c *checker) checkCommand(words []string) (problems []string, ran bool) {
	switch name := words[0]; {
	case name == "solstice" || strings.HasSuffix(name, "/solstice"):
		return c.solstice.check(words[1:])
	case name == "nomad":
		if c.nomad == nil {
			return nil, false // reported once by TestNomadAtHand
		}
		return c.nomad.check(words[1:]), false
	case name == "make":
		for _, w := range words[1:] {
			if !strings.HasPrefix(w, "-") && !strings.Contains(w, "=") && !c.targets[w] {
				problems = append(problems, fmt.Sprintf("make: GNUmakefile has no target %q", w))
			}
		}
		return problems, false
	}
	return nil, false
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
		"```hcl",                                // 21
		"job \"x\" {",                           // 22
		"```",                                   // 23
		"Alert on `solstice_forgejo_taskz`.",    // 24
		"```sh",                                 // 25
		"solstice jobs sync -h",                 // 26: run here, so covered
		"solstice image -h",                     // 27
		"```",                                   // 28
		"<!-- not-run: needs a real GitHub -->", // 29
		"```sh",                                 // 30
		"solstice github run --url https://github.com/OWNER/REPO", // 31
		"```",                          // 32
		"<!-- not-run: stale -->",      // 33
		"```sh",                        // 34
		"solstice version",             // 35: run here after all
		"```",                          // 36
		"<!-- tested-by: TestDocs -->", // 37
		"<!-- not-run: and yet -->",    // 38
		"```sh",                        // 39
		"nomad job status",             // 40
		"```",                          // 41
		"<!-- tested-by: TestDocs -->", // 42
		"Some prose between them.",     // 43
		"```sh",                        // 44: the annotation is not its own
		"make build",                   // 45
		"```",                          // 46
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
		{"docs/drift.md:2:", "no test runs the commands of this block"},
		{"docs/drift.md:34:", "the doc test runs every command in it: drop the annotation"},
		{"docs/drift.md:39:", "both tested-by TestDocs and not-run (and yet)"},
		{"docs/drift.md:42:", "the annotation is not right before a fenced block"},
		{"docs/drift.md:44:", "no test runs the commands of this block"},
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
