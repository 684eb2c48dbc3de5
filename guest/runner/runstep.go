package runner

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/solstice-ci/solstice/guest/expr"
	"github.com/solstice-ci/solstice/internal/contract"
)

// script is one script to run for a step (a run step, or a KDL step).
type script struct {
	text    string
	shell   string // shell option; "" for the default
	workdir string // absolute
	header  string // first line of the log group; "" for no header
}

// runRunStep runs a `run` step: expressions, shell and working directory
// are resolved, the script runs, and the command files (made before the
// step's context, whose watcher reads their paths) are processed.
func (j *Job) runRunStep(ctx context.Context, s *stepRun) {
	defer j.processFileCommands(s, s.files)
	sc, err := j.resolveRunStep(s)
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail(err.Error())
		return
	}
	j.runScript(ctx, s, sc)
}

// resolveRunStep evaluates the step's script, shell and working directory.
func (j *Job) resolveRunStep(s *stepRun) (script, error) {
	ee := j.exprEnv(s, s.env)
	text, err := expr.Interpolate(s.step.Run, ee)
	if err != nil {
		return script{}, err
	}
	shell := s.step.Shell
	if shell == "" {
		shell = j.plan.Defaults.Run.Shell
	}
	if shell == "" && j.plan.Guest != nil {
		shell = j.plan.Guest.Shell // the image's default, below the workflow's
	}
	if shell, err = expr.Interpolate(shell, ee); err != nil {
		return script{}, err
	}
	wd := s.step.WorkingDirectory
	if wd == "" {
		wd = j.plan.Defaults.Run.WorkingDirectory
	}
	if wd, err = expr.Interpolate(wd, ee); err != nil {
		return script{}, err
	}
	return script{text: text, shell: shell, workdir: j.inWorkspace(wd), header: "Run " + firstLine(text)}, nil
}

// inWorkspace is Path.Combine(workspace, p): an absolute p wins.
func (j *Job) inWorkspace(p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(j.workspace, p)
}

// runScript writes the script to RUNNER_TEMP and runs it with its shell,
// recording the exit code and failure in s.
func (j *Job) runScript(ctx context.Context, s *stepRun, sc script) {
	sh, err := resolveShell(sc.shell, j.searchPath())
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail(err.Error())
		return
	}
	path := filepath.Join(j.layout.Temp, newUUID()+shellExt[sh.name])
	if err := os.WriteFile(path, []byte(scriptFor(sh, sc.text)), 0o644); err != nil {
		j.errorLine(s.index, fmt.Sprintf("write the script: %v", err))
		s.fail("the script could not be written")
		return
	}
	argv, err := arguments(sh.format, path)
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail(err.Error())
		return
	}
	if sc.header != "" {
		j.printHeader(s, sc, sh)
	}
	code, err := j.runProcess(ctx, procSpec{path: sh.path, args: argv, dir: sc.workdir, env: j.processEnv(s, nil)}, j.newOutput(s))
	if err != nil {
		j.errorLine(s.index, err.Error())
		s.fail("the process could not be started")
		return
	}
	s.exitCode = &code
	if code != 0 && ctx.Err() == nil {
		j.errorLine(s.index, "Process completed with exit code "+strconv.Itoa(code)+".")
		s.fail("exit code " + strconv.Itoa(code))
	}
}

// printHeader logs the collapsible block GitHub shows above a step's
// output: the script, the shell, and the env context.
func (j *Job) printHeader(s *stepRun, sc script, sh shell) {
	j.emit(contract.Event{Type: contract.TypeLog, Step: s.index, Stream: contract.System, Kind: contract.KindGroup, Line: "##[group]" + sc.header})
	for _, l := range splitLines(trimTrailingNewlines(sc.text)) {
		j.system(s.index, l)
	}
	j.system(s.index, "shell: "+sh.display())
	if len(s.env) > 0 {
		j.system(s.index, "env:")
		for _, k := range slices.Sorted(maps.Keys(s.env)) {
			j.system(s.index, "  "+k+": "+s.env[k])
		}
	}
	j.emit(contract.Event{Type: contract.TypeLog, Step: s.index, Stream: contract.System, Kind: contract.KindEndGroup, Line: "##[endgroup]"})
}

func trimTrailingNewlines(s string) string {
	for len(s) > 0 && (s[len(s)-1] == '\n' || s[len(s)-1] == '\r') {
		s = s[:len(s)-1]
	}
	return s
}
