package workflow

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/guest/kdl"
)

// decoder turns the KDL document into a Workflow. It keeps only the first
// error (the earliest check to fail) and its methods do nothing once one
// is set, so the decoding functions read as plain lists of fields.
type decoder struct {
	file string
	err  error
}

func (d *decoder) failf(pos kdl.Pos, format string, args ...any) {
	if d.err == nil {
		d.err = &Error{File: d.file, Line: max(pos.Line, 1), Col: max(pos.Col, 1), Msg: fmt.Sprintf(format, args...)}
	}
}

func (d *decoder) document(doc *kdl.Document) *Workflow {
	var root *kdl.Node
	for _, n := range doc.Nodes {
		switch {
		case n.Name != "workflow":
			d.failf(n.Pos, "unknown top-level node %q%s (a workflow file holds one workflow node)", n.Name, suggest(n.Name, []string{"workflow"}))
		case root != nil:
			d.failf(n.Pos, "second workflow node (the first is at line %d); a file holds one workflow", root.Line)
		default:
			root = n
		}
	}
	if root == nil {
		d.failf(kdl.Pos{}, "no workflow node")
		return nil
	}
	return d.workflow(root)
}

func (d *decoder) workflow(n *kdl.Node) *Workflow {
	const ctx = "workflow"
	d.checkShape(n, ctx, shape{props: []string{"name"}, children: []string{"env", "job"}})
	wf := &Workflow{Name: d.str(n, ctx, "name", false)}
	firstID := map[string]kdl.Pos{}
	for _, c := range n.Children {
		switch c.Name {
		case "env":
			wf.Env = d.env(c, ctx, wf.Env)
		case "job":
			j := d.job(c)
			if at, dup := firstID[j.ID]; dup && j.ID != "" {
				v, _ := c.Prop("id")
				d.failf(v.Pos, "duplicate job id %q (first used at line %d)", j.ID, at.Line)
			} else {
				firstID[j.ID] = c.Pos
			}
			wf.Jobs = append(wf.Jobs, j)
		}
	}
	if len(wf.Jobs) == 0 {
		d.failf(n.Pos, "workflow has no job")
	}
	return wf
}

// jobIDPattern is GitHub Actions' rule for job ids, which end up in
// names and paths.
var jobIDPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func (d *decoder) job(n *kdl.Node) Job {
	ctx := "job"
	if v, ok := n.Prop("id"); ok {
		if id, ok := v.AsString(); ok {
			ctx = fmt.Sprintf("job %q", id)
		}
	}
	d.checkShape(n, ctx, shape{
		props:    []string{"id", "runs_on", "workdir", "timeout"},
		children: []string{"env", "runs_on", "setup", "step"},
	})
	j := Job{
		ID:      d.str(n, ctx, "id", true),
		Workdir: d.str(n, ctx, "workdir", false),
		Timeout: d.duration(n, ctx),
	}
	if v, _ := n.Prop("id"); j.ID != "" && !jobIDPattern.MatchString(j.ID) {
		d.failf(v.Pos, `%s: invalid id: use letters, digits, "-" and "_", starting with a letter or "_"`, ctx)
	}
	if v, ok := n.Prop("runs_on"); ok {
		d.addLabel(&j, v, ctx)
	}
	for _, c := range n.Children {
		switch c.Name {
		case "env":
			j.Env = d.env(c, ctx, j.Env)
		case "runs_on":
			d.runsOnNode(c, ctx, &j)
		case "setup":
			d.checkShape(c, ctx+": setup", shape{props: []string{"path"}})
			j.Setup = append(j.Setup, d.str(c, ctx+": setup", "path", true))
		case "step":
			j.Steps = append(j.Steps, d.step(c, ctx, len(j.Steps)+1))
		}
	}
	if len(j.RunsOn) == 0 {
		d.failf(n.Pos, `%s: missing property "runs_on" (or a child runs_on "label" ...)`, ctx)
	}
	return j
}

// runsOnNode reads a `runs_on "a" "b"` child: the job runs once per label.
func (d *decoder) runsOnNode(n *kdl.Node, ctx string, j *Job) {
	ctx += ": runs_on"
	d.checkShape(n, ctx, shape{args: len(n.Args)})
	if len(n.Args) == 0 {
		d.failf(n.Pos, "%s: name at least one label", ctx)
	}
	for _, a := range n.Args {
		d.addLabel(j, a, ctx)
	}
}

// addLabel appends a runs_on label, refusing a repeat: it would run the
// same job twice on the same OS.
func (d *decoder) addLabel(j *Job, v kdl.Value, ctx string) {
	l := d.text(v, ctx, "runs_on")
	if l != "" && slices.Contains(j.RunsOn, l) {
		d.failf(v.Pos, "%s: runs_on label %q is named twice", ctx, l)
		return
	}
	j.RunsOn = append(j.RunsOn, l)
	j.RunsOnPos = append(j.RunsOnPos, v.Pos)
}

// step decodes the num-th step of a job; errors name it by its name, or
// by its number when it has none.
func (d *decoder) step(n *kdl.Node, jobCtx string, num int) Step {
	ctx := fmt.Sprintf("%s: step %d", jobCtx, num)
	if v, ok := n.Prop("name"); ok {
		if name, ok := v.AsString(); ok {
			ctx = fmt.Sprintf("%s: step %q", jobCtx, name)
		}
	}
	d.checkShape(n, ctx, shape{props: []string{"name", "run", "workdir", "timeout"}, children: []string{"env"}, args: 1})
	s := Step{
		Name:    d.str(n, ctx, "name", false),
		Run:     d.script(n, ctx),
		Workdir: d.str(n, ctx, "workdir", false),
		Timeout: d.duration(n, ctx),
	}
	for _, c := range n.ChildrenNamed("env") {
		s.Env = d.env(c, ctx, s.Env)
	}
	return s
}

// script returns a step's run= property or its argument, exactly one of
// which must be given.
func (d *decoder) script(n *kdl.Node, ctx string) string {
	arg, hasArg := n.Arg(0)
	if _, hasRun := n.Prop("run"); hasRun {
		if hasArg {
			d.failf(arg.Pos, "%s: the script is given twice, as run= and as an argument", ctx)
		}
		return d.str(n, ctx, "run", true)
	}
	if !hasArg {
		d.failf(n.Pos, `%s: missing property "run" (or give the script as the argument)`, ctx)
		return ""
	}
	return d.text(arg, ctx, "the script")
}

// envName is the POSIX portable form, which every shell can reference.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// env adds an env node's properties to vars (allocating it if nil).
func (d *decoder) env(n *kdl.Node, ctx string, vars map[string]string) map[string]string {
	ctx += ": env"
	d.checkShape(n, ctx, shape{anyProps: true})
	if vars == nil {
		vars = map[string]string{}
	}
	for _, p := range n.Props {
		if !envName.MatchString(p.Name) {
			d.failf(p.Pos, "%s: invalid variable name %q: use letters, digits and \"_\", not starting with a digit", ctx, p.Name)
		}
		vars[p.Name] = d.envValue(p, ctx)
	}
	return vars
}

func (d *decoder) envValue(p kdl.Prop, ctx string) string {
	v := p.Value
	if b, ok := v.AsBool(); ok {
		return fmt.Sprint(b)
	}
	if i, ok := v.AsInt(); ok {
		return i.String()
	}
	if s, ok := v.AsString(); ok {
		return s
	}
	d.failf(v.Pos, "%s: %s must be a string, integer or boolean, found %s %s", ctx, p.Name, v.Kind, v)
	return ""
}

// str returns a string property, "" if it is absent and not required.
func (d *decoder) str(n *kdl.Node, ctx, name string, required bool) string {
	v, ok := n.Prop(name)
	if !ok {
		if required {
			d.failf(n.Pos, "%s: missing property %q", ctx, name)
		}
		return ""
	}
	return d.text(v, ctx, name)
}

// text checks that v is a non-empty string.
func (d *decoder) text(v kdl.Value, ctx, what string) string {
	s, ok := v.AsString()
	switch {
	case !ok:
		d.failf(v.Pos, "%s: %s must be a string, found %s %s", ctx, what, v.Kind, v)
	case strings.TrimSpace(s) == "":
		d.failf(v.Pos, "%s: %s must not be empty", ctx, what)
	}
	return s
}

func (d *decoder) duration(n *kdl.Node, ctx string) time.Duration {
	s := d.str(n, ctx, "timeout", false)
	if s == "" {
		return 0
	}
	v, _ := n.Prop("timeout")
	t, err := time.ParseDuration(s)
	switch {
	case err != nil:
		d.failf(v.Pos, `%s: timeout %q is not a duration (write Go syntax such as "90s", "30m" or "1h30m")`, ctx, s)
	case t <= 0:
		d.failf(v.Pos, "%s: timeout %q must be positive", ctx, s)
	}
	return t
}
