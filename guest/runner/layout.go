package runner

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Layout is the agent's directory tree under its root.
type Layout struct {
	Root   string
	Work   string // runner.workspace; GITHUB_WORKSPACE is a directory in it
	Temp   string // RUNNER_TEMP
	Tools  string // RUNNER_TOOL_CACHE
	Events string // the event stream
	PID    string // pid of the agent running the job
	Log    string // stderr of a detached agent
}

// NewLayout returns the layout under root.
func NewLayout(root string) Layout {
	return Layout{
		Root:   root,
		Work:   filepath.Join(root, "work"),
		Temp:   filepath.Join(root, "temp"),
		Tools:  filepath.Join(root, "tools"),
		Events: filepath.Join(root, "events.jsonl"),
		PID:    filepath.Join(root, "agent.pid"),
		Log:    filepath.Join(root, "agent.log"),
	}
}

// Workspace is GITHUB_WORKSPACE for a repository "owner/name": work/name.
func (l Layout) Workspace(repository string) string {
	name := repository[strings.LastIndex(repository, "/")+1:]
	if name == "" || name == "." || name == ".." {
		name = "workspace"
	}
	return filepath.Join(l.Work, name)
}

// prepare creates the directories and empties RUNNER_TEMP, as the runner
// does at the start of every job.
func (l Layout) prepare(workspace string) error {
	for _, d := range []string{l.Root, l.Work, workspace, l.Tools} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}
	if err := os.RemoveAll(l.Temp); err != nil {
		return fmt.Errorf("clean %s: %w", l.Temp, err)
	}
	if err := os.MkdirAll(l.Temp, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", l.Temp, err)
	}
	return nil
}
