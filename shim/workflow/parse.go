package workflow

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Parse reads, checks and returns a workflow file. filename is used in
// error positions. Every problem found is returned, as Errors.
func Parse(data []byte, filename string) (*Workflow, error) {
	p := &parser{file: filename}
	return p.parse(data)
}

// PayloadFile is the file name used in errors about single-job payloads.
const PayloadFile = "payload"

// ParseSingleJob reads the one-job workflow that Forgejo and Gitea send with
// a task: its matrix is already expanded (one value per key), its name and
// runs-on already interpolated, and its needs name jobs that are not in the
// payload. strategy may carry job-index and job-total.
func ParseSingleJob(payload []byte) (*Workflow, error) {
	p := &parser{file: PayloadFile, single: true}
	return p.parse(payload)
}

func (p *parser) parse(data []byte) (*Workflow, error) {
	root := p.document(data)
	if root == nil {
		return nil, p.errs.err()
	}
	w := p.workflow(root)
	p.checkWorkflow(w)
	if !p.single {
		// A forge's single-job payload was checked by the forge, and its
		// values are partly interpolated already.
		p.checkExpressions(root)
	}
	if err := p.errs.err(); err != nil {
		return nil, err
	}
	return w, nil
}

type workflowField func(p *parser, w *Workflow, f field)

var workflowFields = map[string]workflowField{
	"name":        func(p *parser, w *Workflow, f field) { w.Name = p.str(f.val, featWorkflow, "name") },
	"run-name":    func(p *parser, w *Workflow, f field) { w.RunName = p.str(f.val, featWorkflow, "run-name") },
	"description": func(p *parser, w *Workflow, f field) {},
	"on":          func(p *parser, w *Workflow, f field) { w.On = f.val },
	"env":         func(p *parser, w *Workflow, f field) { w.Env = p.pairs(f.val, featEnv, "env") },
	"defaults":    func(p *parser, w *Workflow, f field) { w.Defaults = p.defaults(f.val, "defaults") },
	"permissions": func(p *parser, w *Workflow, f field) { w.Permissions = f.val },
	"concurrency": func(p *parser, w *Workflow, f field) { w.Concurrency = f.val },
	"jobs":        func(p *parser, w *Workflow, f field) { w.Jobs = p.jobs(f.val) },
}

var workflowKeys = slices.Sorted(maps.Keys(workflowFields))

func (p *parser) workflow(root *yaml.Node) *Workflow {
	w := &Workflow{File: p.file, Keys: map[string]Pos{}, SingleJob: p.single}
	fs, _ := p.fields(root, "the workflow", featWorkflow)
	for _, f := range fs {
		w.Keys[f.name] = posOf(f.key)
		if h, ok := workflowFields[f.name]; ok {
			h(p, w, f)
		} else {
			p.unknownKey(f.key, "the workflow", featWorkflow, workflowKeys)
		}
	}
	if _, ok := w.Keys["jobs"]; !ok {
		p.errorAt(posOf(root), featJobs, "the workflow has no jobs")
	}
	return w
}

var defaultsRunKeys = []string{"shell", "working-directory"}

// defaults reads defaults; it returns defaults.run or nil.
func (p *parser) defaults(n *yaml.Node, where string) *RunDefaults {
	if isNull(n) {
		return nil
	}
	fs, _ := p.fields(n, where, featDefaults)
	var d *RunDefaults
	for _, f := range fs {
		if f.name != "run" {
			p.unknownKey(f.key, where, featDefaults, []string{"run"})
			continue
		}
		d = &RunDefaults{Pos: posOf(f.key)}
		p.defaultsRun(f.val, where+".run", d)
	}
	return d
}

func (p *parser) defaultsRun(n *yaml.Node, where string, d *RunDefaults) {
	if isNull(n) {
		return
	}
	fs, _ := p.fields(n, where, featDefaults)
	for _, f := range fs {
		switch f.name {
		case "shell":
			d.Shell = p.str(f.val, featDefaults, where+".shell")
			p.checkShell(f.val, featDefaults)
		case "working-directory":
			d.WorkingDirectory = p.str(f.val, featDefaults, where+".working-directory")
		default:
			p.unknownKey(f.key, where, featDefaults, defaultsRunKeys)
		}
	}
}

// minutes reads a positive number of minutes or an expression.
func (p *parser) minutes(n *yaml.Node, feature, what string) *NumberOrExpr {
	v, ok := p.number(n, feature, what)
	if ok && v.Expr == "" && !(v.Value > 0) {
		p.errorf(n, feature, "%s must be a positive number of minutes, not %s", what, deref(n).Value)
		return nil
	}
	return v
}

// number reads a number or an expression. A string holding a number is
// accepted too: Gitea writes timeout-minutes and max-parallel as strings.
func (p *parser) number(n *yaml.Node, feature, what string) (*NumberOrExpr, bool) {
	n = deref(n)
	if exprString(n) {
		return &NumberOrExpr{Expr: n.Value}, true
	}
	if n.Kind == yaml.ScalarNode {
		switch v := scalarValue(n).(type) {
		case int64:
			return &NumberOrExpr{Value: float64(v)}, true
		case float64:
			return &NumberOrExpr{Value: v}, true
		case string:
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				return &NumberOrExpr{Value: f}, true
			}
		}
	}
	p.errorf(n, feature, "%s must be a number or a ${{ }} expression, not %s", what, describe(n))
	return nil, false
}

// boolean reads a boolean or an expression ("true"/"false" strings too).
func (p *parser) boolean(n *yaml.Node, feature, what string) BoolOrExpr {
	n = deref(n)
	if exprString(n) {
		return BoolOrExpr{Expr: n.Value}
	}
	if n.Kind == yaml.ScalarNode {
		switch v := scalarValue(n).(type) {
		case bool:
			return BoolOrExpr{Value: v}
		case string:
			if v == "true" || v == "false" {
				return BoolOrExpr{Value: v == "true"}
			}
		}
	}
	p.errorf(n, feature, "%s must be true, false or a ${{ }} expression, not %s", what, describe(n))
	return BoolOrExpr{}
}

// describe names a node's value for error messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	if n.ShortTag() == "!!null" {
		return "null"
	}
	return strconv.Quote(n.Value)
}

var idPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func (p *parser) checkID(n *yaml.Node, id, what, feature string) {
	if !idPattern.MatchString(id) {
		p.errorf(n, feature, "%s %q must start with a letter or _ and contain only letters, digits, - and _", what, id)
	}
}

func quoteList(vals []string) string {
	q := make([]string, len(vals))
	for i, v := range vals {
		q[i] = strconv.Quote(v)
	}
	return strings.Join(q, ", ")
}

func jobWhere(id string) string { return fmt.Sprintf("job %q", id) }
