package docs_test

import (
	"fmt"
	"regexp"
	"strings"
)

// A snippet is a piece of a Markdown file the doc test checks: a fenced
// block (lang is its info string) or an inline code span (lang "inline").
type snippet struct {
	file     string
	line     int // the line of the snippet's first content line
	lang     string
	text     string
	testedBy []string // from a <!-- tested-by: TestA, TestB --> just before the block
	markLine int      // the annotation's line
	notRun   string   // the reason of a <!-- not-run: reason --> just before the block
}

func (s snippet) at(line int) string { return fmt.Sprintf("%s:%d", s.file, s.line+line) }

var (
	fenceRe = regexp.MustCompile("^(\\s*)(```+|~~~+)\\s*([A-Za-z0-9_+-]*)")
	// An annotation is a line of its own (so prose may show one in a
	// code span).
	testedByRe = regexp.MustCompile(`^\s*<!--\s*tested-by:\s*([A-Za-z0-9_, ]+?)\s*-->\s*$`)
	notRunRe   = regexp.MustCompile(`^\s*<!--\s*not-run:\s*(\S.*?)\s*-->\s*$`)
	inlineRe   = regexp.MustCompile("`([^`\n]+(?:\n[^`\n]+)?)`")
)

// parseMarkdown splits a Markdown file into its fenced blocks and the
// inline code spans of the prose between them.
func parseMarkdown(file, text string) []snippet {
	var out []snippet
	lines := strings.Split(text, "\n")
	var prose []string
	proseStart := 1
	flushProse := func() {
		out = append(out, inlineSpans(file, proseStart, strings.Join(prose, "\n"))...)
		prose = nil
	}
	var pending []string // tested-by names waiting for the next block
	var notRun string    // a not-run reason waiting for the next block
	markLine := 0
	for i := 0; i < len(lines); i++ {
		m := fenceRe.FindStringSubmatch(lines[i])
		if m == nil {
			if len(prose) == 0 {
				proseStart = i + 1
			}
			prose = append(prose, lines[i])
			tm, nm := testedByRe.FindStringSubmatch(lines[i]), notRunRe.FindStringSubmatch(lines[i])
			switch {
			case tm != nil:
				pending, markLine = splitNames(tm[1]), i+1
			case nm != nil:
				notRun = nm[1]
			case strings.TrimSpace(lines[i]) != "":
				// The annotations belong to the block right after them.
				pending, notRun = nil, ""
			}
			continue
		}
		flushProse()
		fence := m[2]
		var body []string
		j := i + 1
		for ; j < len(lines); j++ {
			if strings.HasPrefix(strings.TrimSpace(lines[j]), fence) {
				break
			}
			body = append(body, strings.TrimPrefix(lines[j], m[1]))
		}
		out = append(out, snippet{file: file, line: i + 2, lang: strings.ToLower(m[3]), text: strings.Join(body, "\n"), testedBy: pending, markLine: markLine, notRun: notRun})
		pending, notRun = nil, ""
		i = j
	}
	flushProse()
	return out
}

func splitNames(s string) []string {
	var names []string
	for _, n := range strings.Split(s, ",") {
		if n = strings.TrimSpace(n); n != "" {
			names = append(names, n)
		}
	}
	return names
}

// inlineSpans returns the code spans of prose (which starts at line
// start); a span may wrap onto a second line, as prose is wrapped.
func inlineSpans(file string, start int, prose string) []snippet {
	var out []snippet
	for _, loc := range inlineRe.FindAllStringSubmatchIndex(prose, -1) {
		text := prose[loc[2]:loc[3]]
		line := start + strings.Count(prose[:loc[0]], "\n")
		out = append(out, snippet{file: file, line: line, lang: "inline", text: strings.Join(strings.Fields(text), " ")})
	}
	return out
}

// A command is one simple command from a shell snippet, split into words.
type command struct {
	at    string // file:line
	words []string
}

// shellLangs are the info strings whose blocks hold commands.
var shellLangs = map[string]bool{"sh": true, "shell": true, "bash": true, "console": true}

// commands returns the simple commands of a shell block or of an inline
// span that is a command line: continuation lines joined, comments and
// prompts dropped, lists and pipelines split, leading VAR=value and
// export/sudo/env taken off.
func (s snippet) commands() ([]command, error) {
	switch {
	case s.lang == "inline":
		return simpleCommands(s.at(0), s.text)
	case !shellLangs[s.lang]:
		return nil, nil
	}
	var out []command
	lines := strings.Split(s.text, "\n")
	for i := 0; i < len(lines); i++ {
		first := i
		line := lines[i]
		if s.lang == "console" {
			if !strings.HasPrefix(line, "$ ") {
				continue // output
			}
			line = line[2:]
		}
		for strings.HasSuffix(line, "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(lines[i])
		}
		cmds, err := simpleCommands(s.at(first), line)
		if err != nil {
			return nil, err
		}
		out = append(out, cmds...)
	}
	return out, nil
}

// simpleCommands splits one command line into simple commands.
func simpleCommands(at, line string) ([]command, error) {
	words, err := shellWords(line)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", at, err)
	}
	var out []command
	var cur []string
	flush := func() {
		if c := trimPrefixWords(cur); len(c) > 0 {
			out = append(out, command{at: at, words: c})
		}
		cur = nil
	}
	for _, w := range words {
		switch w {
		case "&&", "||", ";", "|", "&":
			flush()
		default:
			cur = append(cur, w)
		}
	}
	flush()
	return out, nil
}

var assignRe = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=`)

func trimPrefixWords(w []string) []string {
	for len(w) > 0 && (assignRe.MatchString(w[0]) || w[0] == "sudo" || w[0] == "env" || w[0] == "exec") {
		w = w[1:]
	}
	if len(w) > 0 && w[0] == "export" {
		return nil
	}
	return w
}

// shellWords splits a line into words the way sh would for the plain
// commands docs show: quotes group, # starts a comment, and the list and
// pipe operators are words of their own. No expansion is done.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	end := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == ' ' || c == '\t':
			end()
		case c == '#' && !inWord:
			end()
			return words, nil
		case c == '\'' || c == '"':
			j := strings.IndexByte(line[i+1:], c)
			if j < 0 {
				return nil, fmt.Errorf("unterminated %c quote in %q", c, line)
			}
			cur.WriteString(line[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '\\' && i+1 < len(line):
			cur.WriteByte(line[i+1])
			inWord = true
			i++
		case c == '&' && i > 0 && (line[i-1] == '>' || line[i-1] == '<'): // 2>&1
			cur.WriteByte(c)
		case c == ';' || c == '|' || c == '&':
			end()
			op := string(c)
			if i+1 < len(line) && (line[i+1] == '|' || line[i+1] == '&') && c != ';' {
				op += string(line[i+1])
				i++
			}
			words = append(words, op)
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	end()
	return words, nil
}

// strayAnnotations reports tested-by and not-run annotations that do not
// stand right before a fenced block (blank lines and other annotations
// between them allowed): parseMarkdown would drop them, and the block
// they were written for would go unchecked.
func strayAnnotations(file, text string) []string {
	var problems []string
	lines := strings.Split(text, "\n")
	for i, l := range lines {
		if !testedByRe.MatchString(l) && !notRunRe.MatchString(l) {
			continue
		}
		j := i + 1
		for j < len(lines) && (strings.TrimSpace(lines[j]) == "" || testedByRe.MatchString(lines[j]) || notRunRe.MatchString(lines[j])) {
			j++
		}
		if j == len(lines) || !fenceRe.MatchString(lines[j]) {
			problems = append(problems, fmt.Sprintf("%s:%d: the annotation is not right before a fenced block, so it annotates nothing", file, i+1))
		}
	}
	return problems
}
