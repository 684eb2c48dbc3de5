package runner

import (
	"strings"
	"unicode"
)

// command is a parsed workflow command (ActionCommand.cs).
type command struct {
	name  string
	props map[string]string // keys lower-cased: the runner's are case-insensitive
	data  string
}

func (c command) prop(name string) (string, bool) {
	v, ok := c.props[strings.ToLower(name)]
	return v, ok
}

// The commands the runner registers (ActionCommandManager and its
// extensions), and those whose line is not echoed.
var (
	registeredCommands = map[string]bool{
		"stop-commands": true, "add-mask": true, "add-path": true, "add-matcher": true,
		"remove-matcher": true, "debug": true, "echo": true, "endgroup": true, "error": true,
		"group": true, "notice": true, "save-state": true, "set-env": true, "set-output": true,
		"warning": true,
	}
	omitEcho = map[string]bool{"add-mask": true, "debug": true, "error": true, "warning": true, "notice": true}
)

var (
	dataUnescapes = [][2]string{{"%0D", "\r"}, {"%0A", "\n"}, {"%25", "%"}}
	propUnescapes = [][2]string{{"%0D", "\r"}, {"%0A", "\n"}, {"%3A", ":"}, {"%2C", ","}, {"%25", "%"}}
	// The legacy ##[…] syntax escapes more.
	legacyUnescapes = [][2]string{{"%3B", ";"}, {"%0D", "\r"}, {"%0A", "\n"}, {"%5D", "]"}, {"%25", "%"}}
)

// unescape applies the mappings one after the other, as the runner does
// (so "%250A" becomes "%0A", not a newline).
func unescape(s string, mappings [][2]string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	for _, m := range mappings {
		s = strings.ReplaceAll(s, m[0], m[1])
	}
	return s
}

// parseCommand recognises `::name k=v,…::data` (after leading white
// space) and then the legacy `##[name k=v;…]data` anywhere in the line.
// registered says which names count (the stop-commands token is one
// while commands are stopped).
func parseCommand(line string, registered func(string) bool) (command, bool) {
	if c, ok := parseV2(line, registered); ok {
		return c, true
	}
	return parseLegacy(line, registered)
}

func parseV2(line string, registered func(string) bool) (command, bool) {
	msg := strings.TrimLeftFunc(line, unicode.IsSpace)
	if !strings.HasPrefix(msg, "::") {
		return command{}, false
	}
	end := strings.Index(msg[2:], "::")
	if end < 0 {
		return command{}, false
	}
	end += 2
	info := msg[2:end]
	name, props, hasProps := strings.Cut(info, " ")
	if !registered(name) {
		return command{}, false
	}
	c := command{name: name, props: map[string]string{}}
	if hasProps && name != "" {
		for _, p := range strings.Split(strings.TrimSpace(props), ",") {
			addProp(c.props, p, propUnescapes)
		}
	}
	c.data = unescape(msg[end+2:], dataUnescapes)
	return c, true
}

func parseLegacy(line string, registered func(string) bool) (command, bool) {
	start := strings.Index(line, "##[")
	if start < 0 {
		return command{}, false
	}
	rb := strings.IndexByte(line[start:], ']')
	if rb < 0 {
		return command{}, false
	}
	rb += start
	info := line[start+3 : rb]
	name, props, hasProps := strings.Cut(info, " ")
	if !registered(name) {
		return command{}, false
	}
	c := command{name: name, props: map[string]string{}}
	if hasProps && name != "" {
		for _, p := range strings.Split(props, ";") {
			addProp(c.props, p, legacyUnescapes)
		}
	}
	c.data = unescape(line[rb+1:], legacyUnescapes)
	return c, true
}

// addProp adds "k=v"; pairs missing either side are ignored, as the
// runner's split with RemoveEmptyEntries ignores them.
func addProp(props map[string]string, pair string, mappings [][2]string) {
	k, v, ok := strings.Cut(pair, "=")
	if !ok || k == "" || v == "" {
		return
	}
	props[strings.ToLower(k)] = unescape(v, mappings)
}
