package workflow

import (
	"bytes"
	"encoding/json"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Pos is a 1-based line and column in a workflow file.
type Pos struct {
	Line, Col int
}

// KV is one entry of an ordered mapping.
type KV struct {
	Key   string
	Value any
}

// Map is a YAML mapping in file order. Values are string, bool, int64,
// float64, nil, []any or Map.
type Map []KV

// Get returns the value of key. Like Actions contexts it ignores case when
// there is no exact match.
func (m Map) Get(key string) (any, bool) {
	if i := m.index(key); i >= 0 {
		return m[i].Value, true
	}
	return nil, false
}

func (m Map) index(key string) int {
	for i, kv := range m {
		if kv.Key == key {
			return i
		}
	}
	for i, kv := range m {
		if strings.EqualFold(kv.Key, key) {
			return i
		}
	}
	return -1
}

// set overwrites key (keeping the first spelling of the key, as GitHub's
// DictionaryExpressionData does) or appends it.
func (m Map) set(key string, v any) Map {
	if i := m.index(key); i >= 0 {
		m[i].Value = v
		return m
	}
	return append(m, KV{key, v})
}

// MarshalJSON writes the mapping as a JSON object in key order.
func (m Map) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, kv := range m {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(kv.Key)
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(kv.Value)
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// Pair is a named string value (env, with, outputs), in file order.
type Pair struct {
	Name  string
	Value string // may contain ${{ }}
	Pos   Pos    // of the name
}

// BoolOrExpr is a boolean or an expression evaluated later.
type BoolOrExpr struct {
	Value bool
	Expr  string // non-empty: a ${{ }} expression; Value is then meaningless
}

// NumberOrExpr is a number or an expression evaluated later.
type NumberOrExpr struct {
	Value float64
	Expr  string // non-empty: a ${{ }} expression; Value is then meaningless
}

// RunDefaults is defaults.run.
type RunDefaults struct {
	Shell            string
	WorkingDirectory string
	Pos              Pos
}

// Workflow is a parsed and validated workflow file.
type Workflow struct {
	File    string
	Keys    map[string]Pos // every top-level key
	Name    string
	RunName string
	On      *yaml.Node // kept raw
	Env     []Pair
	// Defaults is defaults.run, nil when absent.
	Defaults *RunDefaults
	// Permissions and Concurrency are accepted, kept raw and not used.
	Permissions *yaml.Node
	Concurrency *yaml.Node
	Jobs        []*Job // in file order
	// SingleJob is set by ParseSingleJob: the forge already expanded the
	// matrix and interpolated name and runs-on.
	SingleJob bool
}

// Job returns the job with the given id (ignoring case, as needs does).
func (w *Workflow) Job(id string) *Job {
	for _, j := range w.Jobs {
		if strings.EqualFold(j.ID, id) {
			return j
		}
	}
	return nil
}

// Job is one entry of jobs.
type Job struct {
	ID   string
	Pos  Pos            // of the job id
	Keys map[string]Pos // every key of the job
	Name string         // may contain ${{ }}
	// RunsOn labels as written; ${{ matrix.* }} is interpolated per run.
	RunsOn   RunsOn
	Needs    []string // job ids, spelled as the needed job spells its id
	NeedsPos []Pos
	If       string
	Env      []Pair
	// Defaults is defaults.run, nil when absent. When set it replaces the
	// workflow's defaults.run as a whole (the runner's behaviour).
	Defaults             *RunDefaults
	TimeoutMinutes       *NumberOrExpr // nil: 360
	CancelTimeoutMinutes *NumberOrExpr
	ContinueOnError      BoolOrExpr
	Strategy             *Strategy // nil when absent
	Outputs              []Pair
	Steps                []*Step
	// Permissions, Concurrency and Environment are accepted, kept raw and
	// not used.
	Permissions *yaml.Node
	Concurrency *yaml.Node
	Environment *yaml.Node
}

// RunsOn is a job's runs-on: a label, a list of labels, or {group, labels}.
type RunsOn struct {
	Labels []string
	Group  string
	Pos    Pos
	// LabelPos is where each label is written, when it is written as is
	// (not built by an expression), for messages about one label.
	LabelPos map[string]Pos
}

// Strategy is a job's strategy.
type Strategy struct {
	Pos      Pos
	Keys     map[string]Pos
	Matrix   *Matrix    // nil when absent
	FailFast BoolOrExpr // true when absent
	// MaxParallel is nil when absent (then it equals the number of runs).
	MaxParallel *NumberOrExpr
	// Expr is set when the whole strategy is an expression.
	Expr string
	// JobIndex and JobTotal come from Forgejo/Gitea single-job payloads.
	JobIndex, JobTotal *int
}

// Matrix is strategy.matrix.
type Matrix struct {
	Pos     Pos
	Vectors []Vector // in file order: the first varies slowest
	Include []Map
	Exclude []Map
	// Expr is the first expression found in the matrix (or the matrix
	// itself) that only GitHub's server could evaluate; ExprPos is where.
	Expr    string
	ExprPos Pos
}

// Vector is one matrix key and its values.
type Vector struct {
	Key    string
	Values []any
	Pos    Pos
}

// Step is one entry of a job's steps.
type Step struct {
	Index            int // 0-based
	Pos              Pos
	Keys             map[string]Pos
	ID               string
	Name             string
	If               string
	Run              string
	Uses             string // only the built-in actions pass validation
	With             []Pair
	Shell            string
	WorkingDirectory string
	Env              []Pair
	ContinueOnError  BoolOrExpr
	TimeoutMinutes   *NumberOrExpr
}

// IsCheckout reports whether the step is actions/checkout.
func (s *Step) IsCheckout() bool { return isAction(s.Uses, "actions/checkout") }

// IsArtifactOrCache reports whether the step is one of the artifact or cache
// actions the guest implements (upload-artifact and download-artifact at
// v4 or later, cache with restore and save).
func (s *Step) IsArtifactOrCache() bool {
	switch contract.BuiltinAction(s.Uses) {
	case contract.ActionUploadArtifact, contract.ActionDownloadArtifact,
		contract.ActionCache, contract.ActionCacheRestore, contract.ActionCacheSave:
		return true
	}
	return false
}

// KDLAction is Solstice's built-in action that runs a job of a legacy
// .solstice/workflow.kdl file (with: path, job).
const KDLAction = "solstice-ci/kdl"

// IsKDL reports whether the step is the built-in KDL action.
func (s *Step) IsKDL() bool { return isAction(s.Uses, KDLAction) }

func isAction(uses, name string) bool {
	i := strings.LastIndex(uses, "@")
	return i > 0 && i < len(uses)-1 && strings.EqualFold(uses[:i], name)
}
