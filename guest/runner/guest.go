package runner

import "path/filepath"

// applyGuest applies the image's guest settings (contract.GuestSettings,
// from the catalog): PATH additions go in front of the agent's own PATH,
// so steps and the shell lookup alike find them before the OS's tools
// (illumos's /usr/gnu/bin before /usr/bin), and GITHUB_PATH entries still
// come first; a work root moves the workspaces. The shell is applied where
// a run step picks its shell (resolveRunStep).
func (j *Job) applyGuest() {
	g := j.plan.Guest
	if g == nil {
		return
	}
	if len(g.PathPrepend) > 0 {
		orig, _ := j.baseValue("PATH")
		path := joinPath(append(append([]string{}, g.PathPrepend...), orig))
		// A new slice: opt.Environ belongs to the caller; the last PATH wins.
		j.baseEnv = append(append([]string{}, j.baseEnv...), "PATH="+path)
	}
	if g.WorkRoot != "" {
		j.layout.Work = filepath.Clean(g.WorkRoot)
	}
}
