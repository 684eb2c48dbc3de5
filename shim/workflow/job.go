package workflow

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// jobs reads the jobs mapping.
func (p *parser) jobs(n *yaml.Node) []*Job {
	if isNull(n) {
		p.errorf(n, featJobs, "the workflow has no jobs")
		return nil
	}
	fs, ok := p.fields(n, "jobs", featJobs)
	if ok && len(fs) == 0 {
		p.errorf(n, featJobs, "the workflow has no jobs")
	}
	seen := map[string]*yaml.Node{}
	var jobs []*Job
	for _, f := range fs {
		p.checkID(f.key, f.name, "job id", featJobs)
		if prev, dup := seen[strings.ToLower(f.name)]; dup {
			p.errorf(f.key, featJobs, "job id %q repeats job id %q at %d:%d (job ids ignore case)", f.name, prev.Value, prev.Line, prev.Column)
		}
		seen[strings.ToLower(f.name)] = f.key
		jobs = append(jobs, p.job(f.name, f.key, f.val))
	}
	return jobs
}

type jobField func(p *parser, j *Job, f field)

var jobFields = map[string]jobField{
	"name":            func(p *parser, j *Job, f field) { j.Name = p.str(f.val, featJob, "name") },
	"runs-on":         func(p *parser, j *Job, f field) { j.RunsOn = p.runsOn(j.ID, f.val) },
	"needs":           func(p *parser, j *Job, f field) { j.Needs, j.NeedsPos = p.strList(f.val, featNeeds, "needs") },
	"if":              func(p *parser, j *Job, f field) { j.If = p.str(f.val, featJob, "if") },
	"env":             func(p *parser, j *Job, f field) { j.Env = p.pairs(f.val, featEnv, "env") },
	"defaults":        func(p *parser, j *Job, f field) { j.Defaults = p.defaults(f.val, "defaults") },
	"timeout-minutes": func(p *parser, j *Job, f field) { j.TimeoutMinutes = p.minutes(f.val, featTimeout, "timeout-minutes") },
	"cancel-timeout-minutes": func(p *parser, j *Job, f field) {
		j.CancelTimeoutMinutes = p.minutes(f.val, featJob, "cancel-timeout-minutes")
	},
	"continue-on-error": func(p *parser, j *Job, f field) {
		j.ContinueOnError = p.boolean(f.val, featContinue, "continue-on-error")
	},
	"strategy":    func(p *parser, j *Job, f field) { j.Strategy = p.strategy(j.ID, f.key, f.val) },
	"outputs":     func(p *parser, j *Job, f field) { j.Outputs = p.pairs(f.val, featJob, "outputs") },
	"steps":       func(p *parser, j *Job, f field) { j.Steps = p.steps(j.ID, f.val) },
	"permissions": func(p *parser, j *Job, f field) { j.Permissions = f.val },
	"concurrency": func(p *parser, j *Job, f field) { j.Concurrency = f.val },
	"environment": func(p *parser, j *Job, f field) { j.Environment = f.val },
	"uses":        (*parser).reusableWorkflow,
	"with":        func(p *parser, j *Job, f field) {}, // checked in checkJob
	"secrets":     func(p *parser, j *Job, f field) {}, // checked in checkJob
	"container": func(p *parser, j *Job, f field) {
		p.errorf(f.key, featContainer, "job %q sets container: container jobs are not supported, each job runs directly in its VM", j.ID)
	},
	"services": func(p *parser, j *Job, f field) {
		p.errorf(f.key, featServices, "job %q sets services: service containers are not supported", j.ID)
	},
	"snapshot": func(p *parser, j *Job, f field) {
		p.errorf(f.key, featJob, "job %q sets snapshot: custom image snapshots are not supported", j.ID)
	},
}

var jobKeys = slices.Sorted(maps.Keys(jobFields))

func (p *parser) reusableWorkflow(j *Job, f field) {
	p.errorf(f.key, featReusable, "job %q calls reusable workflow %q: reusable workflows are not supported", j.ID, deref(f.val).Value)
}

func (p *parser) job(id string, key, val *yaml.Node) *Job {
	j := &Job{ID: id, Pos: posOf(key), Keys: map[string]Pos{}}
	fs, ok := p.fields(val, jobWhere(id), featJob)
	if !ok {
		return j
	}
	for _, f := range fs {
		j.Keys[f.name] = posOf(f.key)
		if h, ok := jobFields[f.name]; ok {
			h(p, j, f)
		} else {
			p.unknownKey(f.key, jobWhere(id), featJob, jobKeys)
		}
	}
	p.checkJob(j, fs)
	return j
}

// checkJob checks what needs more than one key of the job.
func (p *parser) checkJob(j *Job, fs []field) {
	if fieldVal(fs, "uses") != nil {
		return // already reported; with, secrets and runs-on follow from it
	}
	for _, f := range fs {
		if f.name == "with" || f.name == "secrets" {
			p.errorf(f.key, featReusable, "key %q in job %q is only valid with a reusable workflow (uses)", f.name, j.ID)
		}
	}
	if _, ok := j.Keys["runs-on"]; !ok && !misspelt(fs, "runs-on") {
		p.errorAt(j.Pos, featRunsOn, "job %q has no runs-on", j.ID)
	}
	if _, ok := j.Keys["steps"]; !ok && !misspelt(fs, "steps") {
		p.errorAt(j.Pos, featSteps, "job %q has no steps", j.ID)
	}
}

// runsOn reads a label, a list of labels or {group, labels}.
func (p *parser) runsOn(id string, n *yaml.Node) RunsOn {
	n = deref(n)
	r := RunsOn{Pos: posOf(n), LabelPos: map[string]Pos{}}
	if n.Kind == yaml.MappingNode {
		p.runsOnMapping(id, n, &r)
	} else {
		r.Labels, _ = p.strList(n, featRunsOn, "runs-on")
		labelPositions(n, r.LabelPos)
	}
	for _, l := range r.Labels {
		if strings.TrimSpace(l) == "" {
			p.errorf(n, featRunsOn, "job %q has an empty runs-on label", id)
		}
	}
	if len(r.Labels) == 0 {
		p.errorf(n, featRunsOn, "job %q runs-on names no label (a runner group alone cannot select an image)", id)
	}
	return r
}

func (p *parser) runsOnMapping(id string, n *yaml.Node, r *RunsOn) {
	fs, _ := p.fields(n, "runs-on", featRunsOn)
	for _, f := range fs {
		switch f.name {
		case "group":
			r.Group = p.str(f.val, featRunsOn, "runs-on.group")
		case "labels":
			r.Labels, _ = p.strList(f.val, featRunsOn, "runs-on.labels")
			labelPositions(f.val, r.LabelPos)
		default:
			p.unknownKey(f.key, fmt.Sprintf("runs-on of job %q", id), featRunsOn, []string{"group", "labels"})
		}
	}
}

// labelPositions records where each label of a runs-on scalar or list is.
func labelPositions(n *yaml.Node, into map[string]Pos) {
	n = deref(n)
	items := []*yaml.Node{n}
	if n.Kind == yaml.SequenceNode {
		items = n.Content
	}
	for _, it := range items {
		if it = deref(it); it.Kind == yaml.ScalarNode {
			if _, dup := into[it.Value]; !dup {
				into[it.Value] = posOf(it)
			}
		}
	}
}

// misspelt reports whether an unknown key of fs was taken for key, which
// then needs no second error for being missing.
func misspelt(fs []field, key string) bool {
	for _, f := range fs {
		if _, known := jobFields[f.name]; !known && suggest(f.name, jobKeys) == key {
			return true
		}
	}
	return false
}
