//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// The docs' command lines, as a reader types them: the tests that the
// docs name in <!-- tested-by: --> run those lines, read from the docs
// themselves, so a doc that changes a line changes what its test runs
// (and a line that disappears fails the test).

// docCommand returns the words of the command line in a fenced block of
// the doc file (relative to the repository root) that starts with prefix:
// continuation lines joined, a trailing # comment dropped.
func docCommand(t *testing.T, file, prefix string) []string {
	t.Helper()
	f, err := os.Open(filepath.Join("..", file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var found [][]string
	inBlock := false
	var line string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "```") {
			inBlock, line = !inBlock, ""
			continue
		}
		if !inBlock {
			continue
		}
		line += l
		if strings.HasSuffix(line, "\\") {
			line = strings.TrimSuffix(line, "\\") + " "
			continue
		}
		if i := strings.Index(line, " #"); i >= 0 {
			line = line[:i]
		}
		if words := strings.Fields(line); strings.HasPrefix(strings.Join(words, " "), prefix) {
			found = append(found, words)
		}
		line = ""
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 {
		t.Fatalf("%s has %d command lines starting with %q, want one: %q", file, len(found), prefix, found)
	}
	return found[0]
}

// substitute replaces the doc's placeholders in words (each old string
// must occur, so a placeholder the doc dropped is noticed).
func substitute(t *testing.T, words []string, oldNew ...string) []string {
	t.Helper()
	out := strings.Join(words, "\x00")
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(out, oldNew[i]) {
			t.Fatalf("the doc's command %q has no %q to substitute", strings.Join(words, " "), oldNew[i])
		}
		out = strings.ReplaceAll(out, oldNew[i], oldNew[i+1])
	}
	return strings.Split(out, "\x00")
}

// docRun is a doc's command line that ran.
type docRun struct {
	line string // as run, placeholders substituted
	out  string // stdout and stderr
	code int
	took time.Duration
}

// runDocCommand runs a solstice command line of the docs with this
// build's solstice (bin/solstice or solstice on the reader's PATH), in
// the repository root, with extra added to an environment without NOMAD_*.
func runDocCommand(t *testing.T, limit time.Duration, words []string, extra ...string) docRun {
	t.Helper()
	if words[0] != "solstice" && words[0] != "bin/solstice" {
		t.Fatalf("not a solstice command line: %q", words)
	}
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), words[1:]...)
	cmd.Dir = ".."
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "NOMAD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, extra...)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	err := cmd.Run()
	r := docRun{line: strings.Join(words, " "), out: out.String(), code: exitCode(err), took: time.Since(start)}
	if err != nil && cmd.ProcessState == nil {
		t.Fatalf("%s: %v", r.line, err)
	}
	if ctx.Err() != nil {
		t.Fatalf("%s: still running after %s:\n%s", r.line, limit, r.out)
	}
	t.Logf("%s: exit %d after %s", r.line, r.code, r.took.Round(time.Second))
	return r
}

var summaryRe = regexp.MustCompile(`(?m)^([✓✗⊘-]) (\S.*?)\s+(success|failure|cancelled|skipped)\b`)

// summaryOf reads the closing summary of solstice run's output: each
// job's name and result.
func summaryOf(out string) map[string]string {
	_, after, ok := strings.Cut(out, "\n─")
	if !ok {
		return nil
	}
	jobs := map[string]string{}
	for _, m := range summaryRe.FindAllStringSubmatch(after, -1) {
		jobs[m[2]] = m[3]
	}
	return jobs
}

// nonLoopbackIPv4 is an IPv4 address of this machine that is not on the
// loopback interface: where a reader's solstice run would listen for
// clients on other machines.
func nonLoopbackIPv4(t *testing.T) string {
	t.Helper()
	ifaces, err := net.Interfaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, ifc := range ifaces {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && ipn.IP.IsGlobalUnicast() {
				return ipn.IP.String()
			}
		}
	}
	t.Fatal("this machine has no non-loopback IPv4 address to serve the bundle on")
	return ""
}

// freePort reserves a free port on ip and gives it back.
func freePort(t *testing.T, ip string) string {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return net.JoinHostPort(ip, fmt.Sprint(l.Addr().(*net.TCPAddr).Port))
}
