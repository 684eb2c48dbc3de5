package runner

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/solstice-ci/solstice/guest/events"
	"github.com/solstice-ci/solstice/internal/contract"
)

// Runner messages (Constants.cs).
const (
	msgUnsecureDisabled = "The `%s` command is disabled. Please upgrade to using Environment Files or opt into unsecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_COMMANDS` environment variable to `true`. For more information see: https://github.blog/changelog/2020-10-01-github-actions-deprecating-set-env-and-add-path-commands/"
	msgDeprecated       = "The `%s` command is deprecated and will be disabled soon. Please upgrade to using Environment Files. For more information see: https://github.blog/changelog/2022-10-11-github-actions-deprecating-save-state-and-set-output-commands/"
	msgBadStopToken     = "You cannot use a endToken that is an empty string, the string 'pause-logging', or another workflow command. For more information see: https://docs.github.com/actions/learn-github-actions/workflow-commands-for-github-actions#example-stopping-and-starting-workflow-commands or opt into insecure command execution by setting the `ACTIONS_ALLOW_UNSECURE_STOPCOMMAND_TOKENS` environment variable to `true`."
)

// output handles the output of one step's processes: workflow commands
// are carried out, everything else becomes log events. stdout and stderr
// are read concurrently and share the command state (as the runner's two
// OutputManagers share one ActionCommandManager).
type output struct {
	j         *Job
	s         *stepRun
	mu        sync.Mutex
	stopToken string
	echo      bool
}

func (j *Job) newOutput(s *stepRun) *output {
	return &output{j: j, s: s, echo: j.stepDebug}
}

func (o *output) splitter(stream string) *events.Splitter {
	return events.NewSplitter(events.MaxLine, o.j.masker, func(text string, whole bool) { o.line(stream, text, whole) })
}

// line handles one line of output (or a piece of a cut line, which is
// never a command).
func (o *output) line(stream, text string, whole bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if whole && (strings.Contains(text, "::") || strings.Contains(text, "##[")) && o.command(stream, text) {
		return
	}
	o.j.log(o.s.index, stream, text)
}

func (o *output) registered(name string) bool {
	return registeredCommands[strings.ToLower(name)] || o.stopToken != "" && strings.EqualFold(name, o.stopToken)
}

// command carries out the command in line, if there is one, and reports
// whether the line was consumed (ActionCommandManager.TryProcessCommand).
func (o *output) command(stream, line string) bool {
	c, ok := parseCommand(line, o.registered)
	if !ok {
		return false
	}
	name := strings.ToLower(c.name)
	if o.stopToken != "" {
		if !strings.EqualFold(c.name, o.stopToken) {
			return false // printed as ordinary output
		}
		o.j.log(o.s.index, stream, line)
		o.stopToken = ""
		return true
	}
	if name == "stop-commands" {
		o.stopCommands(stream, line, c)
		return true
	}
	if o.echo && !omitEcho[name] {
		o.emitKind(stream, contract.KindCommand, line)
	}
	if err := o.run(stream, c); err != nil {
		what := line
		if omitEcho[name] {
			what = name // the line may hold a secret
		}
		o.j.errorLine(o.s.index, fmt.Sprintf("Unable to process command '%s' successfully.", what))
		o.j.errorLine(o.s.index, err.Error())
		o.s.commandFailed = true
	}
	return true
}

func (o *output) emitKind(stream, kind, line string) {
	o.j.emit(contract.Event{Type: contract.TypeLog, Step: o.s.index, Stream: stream, Kind: kind, Line: line})
}

func (o *output) stopCommands(stream, line string, c command) {
	tok := c.data
	invalid := tok == "" || registeredCommands[strings.ToLower(tok)] || strings.EqualFold(tok, "pause-logging")
	if invalid && !o.allowed("ACTIONS_ALLOW_UNSECURE_STOPCOMMAND_TOKENS") {
		o.j.errorLine(o.s.index, msgBadStopToken)
		o.s.commandFailed = true
		return
	}
	o.stopToken = tok
	if len(tok) > 6 { // the runner masks long tokens only
		o.j.masker.AddValue(tok)
	}
	o.j.log(o.s.index, stream, line)
}

// allowed reads an opt-in switch from the agent's environment or the
// step's env context, as bool.TryParse does.
func (o *output) allowed(name string) bool {
	if v, ok := o.j.baseValue(name); ok && strings.EqualFold(strings.TrimSpace(v), "true") {
		return true
	}
	return strings.EqualFold(strings.TrimSpace(o.s.env[name]), "true")
}

// run carries out a command other than stop-commands.
func (o *output) run(stream string, c command) error {
	idx := o.s.index
	switch name := strings.ToLower(c.name); name {
	case "add-mask":
		if !o.j.masker.AddMask(c.data) {
			o.j.warning(idx, "Can't add secret mask for empty string in ##[add-mask] command.")
		} else if o.echo {
			o.emitKind(stream, contract.KindCommand, "::add-mask::***")
		}
	case "debug":
		o.j.debug(idx, c.data)
	case "error", "warning", "notice":
		o.j.issue(idx, name, c.data, o.annotation(c))
	case "group":
		o.emitKind(contract.System, contract.KindGroup, "##[group]"+c.data)
	case "endgroup":
		o.emitKind(contract.System, contract.KindEndGroup, "##[endgroup]")
	case "echo":
		return o.setEcho(c.data)
	case "set-env", "add-path":
		return o.unsecure(name, c)
	case "set-output", "save-state":
		return o.deprecated(name, c)
	case "add-matcher", "remove-matcher":
		o.j.warning(idx, fmt.Sprintf("Problem matchers are not supported on Solstice: the %s command was ignored.", name))
	}
	return nil
}

func (o *output) setEcho(v string) error {
	switch strings.ToUpper(strings.TrimSpace(v)) {
	case "ON":
		o.echo = true
	case "OFF":
		o.echo = false
	default:
		return fmt.Errorf("Invalid echo command value. Possible values can be: 'on', 'off'. Current value is: '%s'.", v)
	}
	return nil
}

// unsecure runs set-env and add-path, which need an explicit opt-in.
func (o *output) unsecure(name string, c command) error {
	if !o.allowed("ACTIONS_ALLOW_UNSECURE_COMMANDS") {
		return fmt.Errorf(msgUnsecureDisabled, name)
	}
	if name == "add-path" {
		if c.data == "" {
			return errors.New("Argument 'path' cannot be null or empty.")
		}
		o.j.addPath(c.data)
		return nil
	}
	env, ok := c.prop("name")
	if !ok || env == "" {
		return errors.New("Required field 'name' is missing in ##[set-env] command.")
	}
	if strings.EqualFold(env, "NODE_OPTIONS") {
		o.j.errorLine(o.s.index, "Can't update NODE_OPTIONS environment variable using ::set-env:: command.")
		return nil
	}
	o.j.setEnv(env, c.data)
	return nil
}

// deprecated runs set-output and save-state, which GitHub still honours
// with a warning.
func (o *output) deprecated(name string, c command) error {
	o.j.warning(o.s.index, fmt.Sprintf(msgDeprecated, name))
	key, ok := c.prop("name")
	if !ok || key == "" {
		return fmt.Errorf("Required field 'name' is missing in ##[%s] command.", name)
	}
	if name == "set-output" {
		o.s.setOutput(key, c.data)
	}
	return nil
}

// annotation reads an issue command's properties, adjusting inconsistent
// lines and columns as IssueCommandExtension.ValidateLinesAndColumns does.
func (o *output) annotation(c command) *contract.Annotation {
	num := func(k string) (int, bool) {
		v, ok := c.prop(k)
		if !ok {
			return 0, false
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		return n, err == nil
	}
	line, hasLine := num("line")
	endLine, hasEndLine := num("endLine")
	col, hasCol := num("col")
	endCol, hasEndCol := num("endColumn")
	hasColumn := hasCol || hasEndCol
	if hasEndLine && !hasLine {
		line, hasLine = endLine, true
	}
	if hasEndCol && !hasCol {
		col, hasCol = endCol, true
	}
	if !hasLine && hasColumn || hasEndLine && line != endLine && hasColumn {
		col, endCol, hasCol, hasEndCol = 0, 0, false, false
	}
	if hasLine && hasEndLine && endLine < line {
		line, endLine = 0, 0
	}
	if hasCol && hasEndCol && endCol < col {
		col, endCol = 0, 0
	}
	file, _ := c.prop("file")
	title, _ := c.prop("title")
	return &contract.Annotation{File: o.j.relativeToWorkspace(file), Line: line, EndLine: endLine, Col: col, EndColumn: endCol, Title: title}
}

// relativeToWorkspace makes a path in the workspace relative to it, with
// forward slashes, as the runner does for annotations.
func (j *Job) relativeToWorkspace(file string) string {
	if file == "" || !filepath.IsAbs(file) {
		return file
	}
	rel, err := filepath.Rel(j.workspace, file)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return file
	}
	return filepath.ToSlash(rel)
}

// issue reports an error, warning or notice as readable system lines:
// "Error: file:line:col: title: message", the annotation on the first.
func (j *Job) issue(step int, level, msg string, a *contract.Annotation) {
	if a == nil {
		a = &contract.Annotation{}
	}
	a.Level, a.Message = level, msg
	lines := splitLines(msg)
	if len(lines) == 0 {
		lines = []string{""}
	}
	for i, l := range lines {
		ev := contract.Event{Type: contract.TypeLog, Step: step, Stream: contract.System, Kind: level, Line: l}
		if i == 0 {
			ev.Line, ev.Annotation = issuePrefix(a)+l, a
		}
		j.emit(ev)
	}
}

func issuePrefix(a *contract.Annotation) string {
	p := strings.ToUpper(a.Level[:1]) + a.Level[1:] + ": "
	if a.File != "" {
		p += a.File
		if a.Line > 0 {
			p += ":" + strconv.Itoa(a.Line)
			if a.Col > 0 {
				p += ":" + strconv.Itoa(a.Col)
			}
		}
		p += ": "
	}
	if a.Title != "" {
		p += a.Title + ": "
	}
	return p
}

// splitLines splits text at \n, \r\n and \r, as .NET's line readers do.
func splitLines(text string) []string {
	if text == "" {
		return nil
	}
	text = strings.ReplaceAll(text, "\r\n", "\n")
	return strings.Split(strings.ReplaceAll(text, "\r", "\n"), "\n")
}
