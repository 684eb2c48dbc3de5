package runner

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Default argument formats and script extensions by shell name
// (ScriptHandlerHelpers.cs).
var (
	shellArgs = map[string]string{
		"cmd":        `/D /E:ON /V:OFF /S /C "CALL "{0}""`,
		"pwsh":       `-command ". '{0}'"`,
		"powershell": `-command ". '{0}'"`,
		"bash":       "--noprofile --norc -e -o pipefail {0}",
		"sh":         "-e {0}",
		"python":     "{0}",
	}
	shellExt = map[string]string{
		"cmd": ".cmd", "pwsh": ".ps1", "powershell": ".ps1", "bash": ".sh", "sh": ".sh", "python": ".py",
	}
)

// errInvalidShell is the runner's message for a shell without {0}.
var errInvalidShell = errors.New("Invalid shell option. Shell must be a valid built-in (bash, sh, cmd, powershell, pwsh) or a format string containing '{0}'")

// shell is a resolved shell: the program, the argument format, and the
// name deciding the script's extension and wrapper.
type shell struct {
	path   string
	format string
	name   string
}

// display is the shell line GitHub prints above a step: "/usr/bin/bash -e {0}".
func (s shell) display() string { return s.path + " " + s.format }

// resolveShell implements ScriptHandler's shell choice for action steps.
// search is the directory list commands are looked up in.
func resolveShell(option string, search []string) (shell, error) {
	if option == "" {
		// No shell: bash -e when there is a bash, otherwise sh -e.
		path, err := which("bash", search)
		if err != nil {
			if path, err = which("sh", search); err != nil {
				return shell{}, err
			}
		}
		return shell{path: path, format: shellArgs["sh"], name: "sh"}, nil
	}
	name, args, _ := strings.Cut(option, " ")
	path, err := which(name, search)
	if err != nil && name == "python" {
		// OmniOS and others ship only python3; GitHub would fail here.
		path, err = which("python3", search)
	}
	if err != nil {
		return shell{}, err
	}
	format := strings.TrimLeft(args, " \t")
	if format == "" {
		format = shellArgs[name]
	}
	if format == "" || !strings.Contains(format, "{0}") {
		return shell{}, errInvalidShell
	}
	return shell{path: path, format: format, name: name}, nil
}

// which finds an executable the way the runner's WhichUtil does: a path
// with a slash is taken as is, a name is searched in the directories.
func which(name string, search []string) (string, error) {
	if strings.ContainsRune(name, '/') {
		if isExecutable(name) {
			return name, nil
		}
		return "", fmt.Errorf("%s: command not found", name)
	}
	for _, dir := range search {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: command not found", name)
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// scriptFor applies the runner's fix-ups to a script (FixUpScriptContents):
// PowerShell scripts stop on errors and exit with the last exit code.
func scriptFor(sh shell, script string) string {
	switch sh.name {
	case "pwsh", "powershell":
		return "$ErrorActionPreference = 'stop'\n" + script + "\nif ((Test-Path -LiteralPath variable:\\LASTEXITCODE)) { exit $LASTEXITCODE }"
	case "cmd":
		return "@echo off\n" + script
	}
	return script
}

// arguments renders the argument format with the script path (quotes in
// it escaped as the runner does) and splits the result into argv.
func arguments(format, scriptPath string) ([]string, error) {
	s, err := formatArg(format, strings.ReplaceAll(scriptPath, `"`, `\"`))
	if err != nil {
		return nil, err
	}
	return splitArgs(s), nil
}

// formatArg is .NET's string.Format with one argument: {0} is replaced,
// {{ and }} are literal braces, anything else in braces is an error.
func formatArg(format, arg string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		switch {
		case c == '{' && strings.HasPrefix(format[i:], "{{"):
			b.WriteByte('{')
			i++
		case c == '}' && strings.HasPrefix(format[i:], "}}"):
			b.WriteByte('}')
			i++
		case c == '{' && strings.HasPrefix(format[i:], "{0}"):
			b.WriteString(arg)
			i += 2
		case c == '{' || c == '}':
			return "", fmt.Errorf("invalid shell format %q: Input string was not in a correct format", format)
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), nil
}

// splitArgs splits an argument string the way .NET does on Unix
// (Process.Unix.cs ParseArgumentsIntoList): spaces and tabs separate
// arguments outside double quotes; a double quote toggles quoting, and
// two inside quotes make a literal one; 2n backslashes before a quote
// give n backslashes, 2n+1 give n and a literal quote; other backslashes
// and single quotes are literal.
func splitArgs(s string) []string {
	var out []string
	for i := 0; i < len(s); i++ {
		for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
			i++
		}
		if i == len(s) {
			break
		}
		var arg string
		arg, i = nextArg(s, i)
		out = append(out, arg)
	}
	return out
}

func nextArg(s string, i int) (string, int) {
	var b strings.Builder
	inQuotes := false
	for i < len(s) {
		n := 0
		for i < len(s) && s[i] == '\\' {
			i++
			n++
		}
		if n > 0 {
			if i >= len(s) || s[i] != '"' {
				b.WriteString(strings.Repeat(`\`, n))
			} else {
				b.WriteString(strings.Repeat(`\`, n/2))
				if n%2 != 0 {
					b.WriteByte('"')
					i++
				}
			}
			continue
		}
		c := s[i]
		if c == '"' {
			if inQuotes && i < len(s)-1 && s[i+1] == '"' {
				b.WriteByte('"')
				i++
			} else {
				inQuotes = !inQuotes
			}
			i++
			continue
		}
		if (c == ' ' || c == '\t') && !inQuotes {
			break
		}
		b.WriteByte(c)
		i++
	}
	return b.String(), i
}
