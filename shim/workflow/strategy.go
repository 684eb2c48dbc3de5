package workflow

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"
)

func (p *parser) strategy(jobID string, key, n *yaml.Node) *Strategy {
	n = deref(n)
	s := &Strategy{Pos: posOf(key), Keys: map[string]Pos{}, FailFast: BoolOrExpr{Value: true}}
	if exprString(n) {
		s.Expr = n.Value
		return s
	}
	fs, _ := p.fields(n, fmt.Sprintf("strategy of job %q", jobID), featStrategy)
	for _, f := range fs {
		s.Keys[f.name] = posOf(f.key)
		p.strategyField(jobID, s, f)
	}
	return s
}

var strategyKeys = []string{"fail-fast", "matrix", "max-parallel"}

func (p *parser) strategyField(jobID string, s *Strategy, f field) {
	switch f.name {
	case "fail-fast":
		s.FailFast = p.boolean(f.val, featStrategy, "strategy.fail-fast")
	case "max-parallel":
		s.MaxParallel, _ = p.number(f.val, featStrategy, "strategy.max-parallel")
	case "matrix":
		s.Matrix = p.matrixChecked(jobID, f.val)
	case "job-index", "job-total":
		if !p.single {
			p.unknownKey(f.key, fmt.Sprintf("strategy of job %q", jobID), featStrategy, strategyKeys)
			return
		}
		v, ok := p.number(f.val, featPayload, "strategy."+f.name)
		if ok && v.Expr == "" {
			i := int(v.Value)
			if f.name == "job-index" {
				s.JobIndex = &i
			} else {
				s.JobTotal = &i
			}
		}
	default:
		p.unknownKey(f.key, fmt.Sprintf("strategy of job %q", jobID), featStrategy, strategyKeys)
	}
}

// matrixChecked reads a matrix and, when it is literal and well formed,
// checks the number of combinations it makes.
func (p *parser) matrixChecked(jobID string, n *yaml.Node) *Matrix {
	before := len(p.errs)
	m := p.matrix(jobID, n)
	if m == nil || m.Expr != "" || len(p.errs) > before {
		return m
	}
	combos, msg := m.expand()
	switch {
	case msg != "":
		p.errorAt(m.Pos, featMatrix, "the matrix of job %q %s", jobID, msg)
	case p.single && len(combos) != 1:
		p.errorAt(m.Pos, featPayload, "the matrix of job %q makes %d combinations; a single-job payload has exactly one", jobID, len(combos))
	}
	return m
}

func (p *parser) matrix(jobID string, n *yaml.Node) *Matrix {
	n = p.literal(n)
	if n == nil {
		return nil
	}
	m := &Matrix{Pos: posOf(n)}
	if exprString(n) {
		m.Expr, m.ExprPos = n.Value, posOf(n)
		return m
	}
	fs, ok := p.fields(n, fmt.Sprintf("strategy.matrix of job %q", jobID), featMatrix)
	if !ok {
		return nil
	}
	var excludeNode *yaml.Node
	for _, f := range fs {
		switch f.name {
		case "include":
			m.Include = p.filterList(m, f.val, "include", featInclude)
		case "exclude":
			excludeNode = p.literal(f.val)
			m.Exclude = p.filterList(m, excludeNode, "exclude", featExclude)
		default:
			p.vector(jobID, m, f)
		}
	}
	p.checkMatrix(jobID, m, excludeNode)
	return m
}

// noteExpr remembers the first expression in n, if any.
func (m *Matrix) noteExpr(n *yaml.Node) bool {
	e := firstExpr(n)
	if e != nil && m.Expr == "" {
		m.Expr, m.ExprPos = e.Value, posOf(e)
	}
	return e != nil
}

func (p *parser) vector(jobID string, m *Matrix, f field) {
	n := p.literal(f.val)
	if n == nil || m.noteExpr(n) {
		return
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, featMatrix, "matrix vector %q of job %q must be a list of values, not %s", f.name, jobID, describe(n))
		return
	}
	if len(n.Content) == 0 {
		p.errorf(n, featMatrix, "matrix vector %q of job %q has no values", f.name, jobID)
		return
	}
	m.Vectors = append(m.Vectors, Vector{Key: f.name, Values: toValue(n).([]any), Pos: posOf(f.key)})
}

// filterList reads include or exclude: a list of non-empty mappings.
func (p *parser) filterList(m *Matrix, n *yaml.Node, what, feature string) []Map {
	n = p.literal(n)
	if n == nil || m.noteExpr(n) || n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null" {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		p.errorf(n, feature, "matrix %s must be a list of mappings, not %s", what, describe(n))
		return nil
	}
	var out []Map
	for _, c := range n.Content {
		c = deref(c)
		if c.Kind != yaml.MappingNode {
			p.errorf(c, feature, "a matrix %s entry must be a mapping, not %s", what, describe(c))
			continue
		}
		if len(c.Content) == 0 {
			p.errorf(c, feature, "a matrix %s entry is empty", what)
			continue
		}
		p.fields(c, "a matrix "+what+" entry", feature) // duplicate keys
		out = append(out, toValue(c).(Map))
	}
	return out
}

func (p *parser) checkMatrix(jobID string, m *Matrix, exclude *yaml.Node) {
	if m.Expr != "" {
		return
	}
	if len(m.Vectors) == 0 && len(m.Include) == 0 {
		p.errorAt(m.Pos, featMatrix, "the matrix of job %q defines no vector and no include", jobID)
	}
	if exclude == nil || exclude.Kind != yaml.SequenceNode {
		return
	}
	for _, item := range deref(exclude).Content {
		p.checkExcludeKeys(m, deref(item))
	}
}

// checkExcludeKeys rejects exclude keys that are not vectors, as GitHub does.
func (p *parser) checkExcludeKeys(m *Matrix, item *yaml.Node) {
	if item.Kind != yaml.MappingNode {
		return
	}
	for i := 0; i < len(item.Content); i += 2 {
		k := deref(item.Content[i])
		if m.isVector(k.Value) {
			continue
		}
		p.errorf(k, featExclude, "matrix exclude names %q, which is not a matrix vector (vectors: %s)", k.Value, m.vectorNames())
	}
}

func (m *Matrix) isVector(key string) bool {
	for _, v := range m.Vectors {
		if strings.EqualFold(v.Key, key) {
			return true
		}
	}
	return false
}

func (m *Matrix) vectorNames() string {
	names := make([]string, len(m.Vectors))
	for i, v := range m.Vectors {
		names[i] = v.Key
	}
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

var fromJSONLiteral = regexp.MustCompile(`^\$\{\{\s*(?i:fromjson)\(\s*'((?:[^']|'')*)'\s*\)\s*\}\}$`)

// literal evaluates ${{ fromJSON('<literal JSON>') }}, the one matrix
// expression solstice run can evaluate without GitHub's contexts. Other
// nodes are returned as they are; nil means an error was reported.
func (p *parser) literal(n *yaml.Node) *yaml.Node {
	n = deref(n)
	if !exprString(n) {
		return n
	}
	sub := fromJSONLiteral.FindStringSubmatch(strings.TrimSpace(n.Value))
	if sub == nil {
		return n
	}
	src := strings.ReplaceAll(sub[1], "''", "'")
	var doc yaml.Node
	if !json.Valid([]byte(src)) || yaml.Unmarshal([]byte(src), &doc) != nil || len(doc.Content) == 0 {
		p.errorf(n, featMatrix, "fromJSON argument is not valid JSON: %s", src)
		return nil
	}
	out := doc.Content[0]
	setPos(out, n.Line, n.Column)
	return out
}

func setPos(n *yaml.Node, line, col int) {
	n.Line, n.Column = line, col
	for _, c := range n.Content {
		setPos(c, line, col)
	}
}
