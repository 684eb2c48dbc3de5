package workflow

import (
	"fmt"
	"strings"
)

// checkWorkflow checks what spans jobs: needs, and the single-job payload
// shape.
func (p *parser) checkWorkflow(w *Workflow) {
	if p.single {
		if len(w.Jobs) != 1 && len(p.errs) == 0 {
			p.errorAt(Pos{1, 1}, featPayload, "a single-job payload must hold exactly one job, not %d", len(w.Jobs))
		}
		return // needs name jobs that are not in the payload
	}
	ids := make([]string, len(w.Jobs))
	for i, j := range w.Jobs {
		ids[i] = j.ID
	}
	for _, j := range w.Jobs {
		p.resolveNeeds(w, j, ids)
	}
	p.checkCycles(w)
}

// resolveNeeds reports unknown jobs and spells known ones as their id.
func (p *parser) resolveNeeds(w *Workflow, j *Job, ids []string) {
	for i, n := range j.Needs {
		if need := w.Job(n); need != nil {
			j.Needs[i] = need.ID
			continue
		}
		feature := featNeeds
		if s := suggest(n, ids); s != "" {
			feature = fmt.Sprintf("did you mean %q?", s)
		}
		p.errorAt(j.NeedsPos[i], feature, "job %q needs unknown job %q", j.ID, n)
	}
}

// checkCycles reports each needs cycle once, at the first job of the cycle
// in file order.
func (p *parser) checkCycles(w *Workflow) {
	c := &cycleFinder{p: p, w: w, state: map[*Job]int{}, reported: map[string]bool{}}
	for _, j := range w.Jobs {
		if c.state[j] == unvisited {
			c.visit(j)
		}
	}
}

const (
	unvisited = iota
	visiting
	visited
)

// cycleFinder is a depth-first search over needs.
type cycleFinder struct {
	p        *parser
	w        *Workflow
	state    map[*Job]int
	stack    []*Job
	reported map[string]bool
}

func (c *cycleFinder) visit(j *Job) {
	c.state[j] = visiting
	c.stack = append(c.stack, j)
	for _, n := range j.Needs {
		next := c.w.Job(n)
		switch {
		case next == nil:
		case c.state[next] == visiting:
			c.p.reportCycle(c.w, cycleFrom(c.stack, next), c.reported)
		case c.state[next] == unvisited:
			c.visit(next)
		}
	}
	c.stack = c.stack[:len(c.stack)-1]
	c.state[j] = visited
}

// cycleFrom returns the jobs of stack from start on.
func cycleFrom(stack []*Job, start *Job) []*Job {
	for i, j := range stack {
		if j == start {
			return append([]*Job(nil), stack[i:]...)
		}
	}
	return nil
}

func (p *parser) reportCycle(w *Workflow, cycle []*Job, reported map[string]bool) {
	first := 0
	for i, j := range cycle {
		if indexOf(w, j) < indexOf(w, cycle[first]) {
			first = i
		}
	}
	cycle = append(cycle[first:], cycle[:first]...)
	names := make([]string, 0, len(cycle)+1)
	for _, j := range cycle {
		names = append(names, j.ID)
	}
	key := strings.Join(names, "\x00")
	if reported[key] {
		return
	}
	reported[key] = true
	names = append(names, cycle[0].ID)
	next := names[1]
	p.errorAt(needPos(cycle[0], next), featNeeds, "job %q needs %q, which makes a cycle: %s", cycle[0].ID, next, strings.Join(names, " -> "))
}

func indexOf(w *Workflow, j *Job) int {
	for i, x := range w.Jobs {
		if x == j {
			return i
		}
	}
	return -1
}

func needPos(j *Job, need string) Pos {
	for i, n := range j.Needs {
		if strings.EqualFold(n, need) {
			return j.NeedsPos[i]
		}
	}
	return j.Pos
}

// Order groups runs into waves: a run's wave comes after the waves of all
// runs of every job it needs. Needs naming jobs that are not among runs (as
// in single-job payloads) are taken as met. Runs keep their order within a
// wave.
func Order(runs []Run) ([][]Run, error) {
	deps := map[string][]string{}
	for _, r := range runs {
		deps[strings.ToLower(r.JobID)] = lowerAll(r.Needs)
	}
	level := map[string]int{}
	for len(level) < len(deps) {
		if !assignLevels(deps, level) {
			return nil, fmt.Errorf("workflow: runs have a needs cycle among jobs %s", quoteList(unleveled(deps, level)))
		}
	}
	var waves [][]Run
	for _, r := range runs {
		l := level[strings.ToLower(r.JobID)]
		for len(waves) <= l {
			waves = append(waves, nil)
		}
		waves[l] = append(waves[l], r)
	}
	return waves, nil
}

// assignLevels gives a level to each job whose needs all have one; it
// reports whether it made progress.
func assignLevels(deps map[string][]string, level map[string]int) bool {
	progress := false
	for id, needs := range deps {
		if _, done := level[id]; done {
			continue
		}
		l, ready := 0, true
		for _, n := range needs {
			nl, done := level[n]
			_, present := deps[n]
			switch {
			case !present:
			case !done:
				ready = false
			default:
				l = max(l, nl+1)
			}
		}
		if ready {
			level[id], progress = l, true
		}
	}
	return progress
}

func unleveled(deps map[string][]string, level map[string]int) []string {
	var out []string
	for id := range deps {
		if _, done := level[id]; !done {
			out = append(out, id)
		}
	}
	return sortedStrings(out)
}

func lowerAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(s)
	}
	return out
}
