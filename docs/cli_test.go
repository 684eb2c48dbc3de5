package docs_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// A tool runs a CLI's help for the checker, each help once.
type tool struct {
	bin  string
	dir  string // working directory: the repository root
	env  []string
	mu   sync.Mutex
	seen map[string]result
}

type result struct {
	stdout, stderr string
	code           int
}

func newTool(bin, dir string) *tool {
	// The commands must not see a cluster: a doc's validate or help
	// runs the same everywhere.
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOMAD_") {
			env = append(env, kv)
		}
	}
	return &tool{bin: bin, dir: dir, env: env, seen: map[string]result{}}
}

// run runs the tool with args (at most 30 s) in the repository root,
// once per distinct args.
func (t *tool) run(args ...string) (result, error) { return t.runIn(t.dir, args...) }

// runIn is run in another working directory.
func (t *tool) runIn(dir string, args ...string) (result, error) {
	key := dir + "\x00" + strings.Join(args, "\x00")
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.seen[key]; ok {
		return r, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, t.bin, args...)
	cmd.Dir, cmd.Env = dir, t.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		r.code = exit.ExitCode()
	case err != nil:
		return r, fmt.Errorf("run %s %s: %w", t.bin, strings.Join(args, " "), err)
	}
	t.seen[key] = r
	return r, nil
}

// A flagSpec is what a help text says about a command's flags.
type flagSpec struct {
	known    map[string]bool
	hasValue map[string]bool
}

var goFlagRe = regexp.MustCompile(`(?m)^  -([A-Za-z0-9][\w-]*)( [a-z]\w*)?(\t|$)`)

// goFlags reads the options Go's flag package prints (PrintDefaults).
func goFlags(help string) flagSpec {
	fs := flagSpec{known: map[string]bool{"h": true, "help": true}, hasValue: map[string]bool{}}
	for _, m := range goFlagRe.FindAllStringSubmatch(help, -1) {
		fs.known[m[1]] = true
		fs.hasValue[m[1]] = m[2] != ""
	}
	return fs
}

// checkFlags checks the words after a command's path: every flag is
// known, and, when strict, no flag follows an argument (Go's flag
// package, which solstice uses, stops at the first argument; nomad's
// exec passes what follows to the command it runs, so there the check
// stops at the first argument).
func checkFlags(prog string, fs flagSpec, rest []string, strict bool) (positional []string, problems []string) {
	for i := 0; i < len(rest); i++ {
		w := rest[i]
		if w == "--" {
			return append(positional, rest[i+1:]...), problems
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			positional = append(positional, w)
			continue
		}
		name, _, hasEq := strings.Cut(strings.TrimLeft(w, "-"), "=")
		switch {
		case len(positional) > 0 && !strict:
			return append(positional, rest[i:]...), problems
		case len(positional) > 0:
			problems = append(problems, fmt.Sprintf("%s: flag %s comes after the argument %q, so it is not parsed as a flag", prog, w, positional[0]))
		case !fs.known[name]:
			problems = append(problems, fmt.Sprintf("%s: no flag %s", prog, w))
		case fs.hasValue[name] && !hasEq:
			i++ // its value
		}
	}
	return positional, problems
}

// solsticeChecker checks solstice command lines against the built CLI.
type solsticeChecker struct{ *tool }

var solsticeCmdRe = regexp.MustCompile(`(?m)^  ([a-z][\w-]*)  +\S`)

// check returns what is wrong with one `solstice …` command line, and
// whether it ran the line for real (see runCheap).
func (c solsticeChecker) check(words []string) (problems []string, ran bool) {
	if len(words) == 0 {
		return nil, false
	}
	if isHelpWord(words[0]) || words[0] == "--version" || words[0] == "-version" {
		return c.mustSucceed(words), true
	}
	if strings.HasPrefix(words[0], "-") {
		return []string{fmt.Sprintf("solstice: no global flag %s", words[0])}, false
	}
	top, err := c.run("-h")
	if err != nil {
		return []string{err.Error()}, false
	}
	var cmds []string
	for _, m := range solsticeCmdRe.FindAllStringSubmatch(top.stdout, -1) {
		cmds = append(cmds, m[1])
	}
	if !slices.Contains(cmds, words[0]) {
		return []string{fmt.Sprintf("solstice: no command %q (solstice -h lists %s)", words[0], strings.Join(cmds, ", "))}, false
	}
	path, rest, help, problem := c.resolve(words)
	if problem != "" {
		return []string{problem}, false
	}
	prog := "solstice " + strings.Join(path, " ")
	positional, problems := checkFlags(prog, goFlags(help), rest, true)
	if len(problems) > 0 {
		return problems, false
	}
	return c.runCheap(path, rest, positional)
}

// resolve finds the command a line names: a group (its help names a
// <subcommand>) takes one more word.
func (c solsticeChecker) resolve(words []string) (path, rest []string, help, problem string) {
	r, err := c.run(words[0], "-h")
	if err != nil {
		return nil, nil, "", err.Error()
	}
	if r.code != 0 {
		return nil, nil, "", fmt.Sprintf("solstice %s -h: exit status %d: %s", words[0], r.code, r.stderr)
	}
	if !strings.Contains(r.stdout, "<subcommand>") {
		return words[:1], words[1:], r.stdout, ""
	}
	if len(words) == 1 {
		return words[:1], nil, r.stdout, "" // the group itself, named in prose
	}
	if isHelpWord(words[1]) {
		return words[:1], words[1:], r.stdout, "" // the group's help, run by runCheap
	}
	sub, err := c.run(words[0], words[1], "-h")
	if err != nil {
		return nil, nil, "", err.Error()
	}
	if sub.code != 0 {
		return nil, nil, "", fmt.Sprintf("solstice %s: no subcommand %q: %s", words[0], words[1], firstLine(sub.stderr))
	}
	return words[:2], words[2:], sub.stdout, ""
}

// runCheap runs the commands that cost nothing for real: help, version,
// and validate on files of this repository or on the reader's own
// workflow files (see validateStandIn). ran says whether it did.
func (c solsticeChecker) runCheap(path, rest, positional []string) (problems []string, ran bool) {
	args := append(slices.Clone(path), rest...)
	switch {
	case slices.ContainsFunc(rest, isHelpWord), strings.Join(path, " ") == "version":
		return c.mustSucceed(args), true
	case path[0] == "validate" && len(positional) > 0 && allExist(c.dir, positional):
		return c.mustSucceed(args), true
	case path[0] == "validate" && len(positional) > 0 && !slices.ContainsFunc(positional, notForgeWorkflow):
		return c.validateStandIn(args, positional), true
	}
	return nil, false
}

// forgeWorkflowRe matches where a reader keeps a workflow in their own
// repository: the forges' workflow directories.
var forgeWorkflowRe = regexp.MustCompile(`^\.(github|gitea|forgejo)/workflows/[\w.-]+\.ya?ml$`)

func notForgeWorkflow(p string) bool { return !forgeWorkflowRe.MatchString(p) }

// standInWorkflow is the workflow the docs tell readers to push as their
// .github/workflows/ci.yml (getting-started.md).
const standInWorkflow = "examples/omnios.yml"

// validateStandIn runs a validate line that names the reader's own
// workflow files, in a directory holding examples/omnios.yml at each of
// those paths, twice: as is it must pass, and with a step appended that
// Solstice cannot run it must fail, naming the file, line and column of
// that step (what the docs promise a reader sees).
func (c solsticeChecker) validateStandIn(args, files []string) []string {
	good, err := os.ReadFile(filepath.Join(c.dir, standInWorkflow))
	if err != nil {
		return []string{err.Error()}
	}
	const badStep = "      - uses: actions/setup-node@v4\n"
	bad := append(slices.Clone(good), badStep...)
	badLine := bytes.Count(good, []byte("\n")) + 1
	var problems []string
	for _, v := range []struct {
		name    string
		content []byte
	}{{"good", good}, {"bad", bad}} {
		dir, err := standInDir(files, v.content)
		if err != nil {
			return append(problems, err.Error())
		}
		defer os.RemoveAll(dir)
		r, err := c.runIn(dir, args...)
		if err != nil {
			return append(problems, err.Error())
		}
		shown := fmt.Sprintf("solstice %s on %s", strings.Join(args, " "), standInWorkflow)
		if v.name == "good" {
			if r.code != 0 || !strings.Contains(r.stdout, files[0]+": ok") {
				problems = append(problems, fmt.Sprintf("%s: exit status %d, stdout %q, stderr %q; want 0 and %q", shown, r.code, r.stdout, r.stderr, files[0]+": ok"))
			}
			continue
		}
		where := fmt.Sprintf("%s:%d:%d: ", files[0], badLine, strings.Index(badStep, "actions/")+1)
		if r.code != 1 || !regexp.MustCompile(`(?m)^`+regexp.QuoteMeta(where)+`.* uses actions/setup-node@v4: only run steps`).MatchString(r.stderr) {
			problems = append(problems, fmt.Sprintf("%s with an unsupported step appended: exit status %d, stderr %q; want 1 and %q naming the step", shown, r.code, r.stderr, where))
		}
	}
	return problems
}

// standInDir makes a directory holding content at each of files.
func standInDir(files []string, content []byte) (string, error) {
	dir, err := os.MkdirTemp("", "solstice-doctest-workflow-")
	if err != nil {
		return "", err
	}
	for _, f := range files {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
		if err := os.WriteFile(p, content, 0o644); err != nil {
			os.RemoveAll(dir)
			return "", err
		}
	}
	return dir, nil
}

func (c solsticeChecker) mustSucceed(args []string) []string {
	r, err := c.run(args...)
	switch {
	case err != nil:
		return []string{err.Error()}
	case r.code != 0:
		return []string{fmt.Sprintf("solstice %s: exit status %d: %s", strings.Join(args, " "), r.code, firstLine(r.stderr))}
	case r.stdout == "":
		return []string{fmt.Sprintf("solstice %s: printed nothing on stdout", strings.Join(args, " "))}
	}
	return nil
}

func isHelpWord(w string) bool { return w == "-h" || w == "--help" || w == "-help" || w == "help" }

func allExist(dir string, paths []string) bool {
	for _, p := range paths {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			return false
		}
	}
	return true
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}

// nomadChecker checks nomad command lines against the help of the Nomad
// binary the tests use (1.6.3).
type nomadChecker struct{ *tool }

var (
	nomadSubRe  = regexp.MustCompile(`^    ([a-z][\w-]*)\s`)
	nomadFlagRe = regexp.MustCompile(`(?m)^\s+-([A-Za-z][\w-]*)(=|\s+[<'"]|\s*$)?`)
)

// subcommands lists the commands a nomad help text offers.
func subcommands(help string) []string {
	var subs []string
	in := false
	for _, l := range strings.Split(help, "\n") {
		switch {
		case strings.HasSuffix(l, "ommands:"):
			in = true
		case in && nomadSubRe.MatchString(l):
			subs = append(subs, nomadSubRe.FindStringSubmatch(l)[1])
		case strings.TrimSpace(l) == "":
		default:
			in = false
		}
	}
	return subs
}

var nomadGlobal = map[string]bool{"version": true, "v": true, "h": true, "help": true}

func (c nomadChecker) check(words []string) []string {
	if len(words) == 0 {
		return nil
	}
	if strings.HasPrefix(words[0], "-") {
		if !nomadGlobal[strings.TrimLeft(words[0], "-")] {
			return []string{fmt.Sprintf("nomad: no global flag %s", words[0])}
		}
		return nil
	}
	var path []string
	help, err := c.run("-h")
	if err != nil {
		return []string{err.Error()}
	}
	rest := words
	for len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		subs := subcommands(help.stdout + help.stderr)
		if len(subs) == 0 {
			break // a leaf: the rest are its arguments
		}
		if !slices.Contains(subs, rest[0]) {
			return []string{fmt.Sprintf("nomad %s: no subcommand %q (nomad 1.6.3 has %s)", strings.Join(path, " "), rest[0], strings.Join(subs, ", "))}
		}
		path, rest = append(path, rest[0]), rest[1:]
		if help, err = c.run(append(slices.Clone(path), "-h")...); err != nil {
			return []string{err.Error()}
		}
	}
	text := help.stdout + help.stderr
	fs := flagSpec{known: map[string]bool{"h": true, "help": true}, hasValue: map[string]bool{}}
	for _, m := range nomadFlagRe.FindAllStringSubmatch(text, -1) {
		fs.known[m[1]] = true
		fs.hasValue[m[1]] = fs.hasValue[m[1]] || strings.TrimSpace(m[2]) != ""
	}
	_, problems := checkFlags("nomad "+strings.Join(path, " "), fs, rest, false)
	if len(path) > 0 && len(subcommands(text)) > 0 && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		problems = append(problems, fmt.Sprintf("nomad %s: no subcommand %q", strings.Join(path, " "), rest[0]))
	}
	return problems
}
