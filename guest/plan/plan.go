// Package plan defines the job plan: everything the Solstice guest agent
// (solstice-guest) needs to run one job of a workflow inside the VM. The
// runner shims and `solstice run` build plans, Nomad carries them as the
// dispatch payload, the solstice-vm driver uploads them into the guest, and
// the agent decodes, validates and runs them.
//
// # Format (version 1)
//
// A plan is one JSON object; only "version", "job.id" and "steps" are
// required, every other field may be omitted:
//
//	{"version": 1,
//	 "job": {"id": "build", "name": "build (amd64)", "workflow": "CI"},
//	 "timeout_minutes": 360,          // job timeout; 0 or absent: 360
//	 "cancel_timeout_minutes": 5,     // how long always() steps may run after a cancel; default 5
//	 "defaults": {"run": {"shell": "bash", "working-directory": "src"}},
//	 "env": [{"name": "WF", "value": "x"}],  // workflow env, then job env, in order; ${{ }} allowed
//	 "contexts": {"github": {…}, "matrix": {…}, "needs": {…},
//	              "vars": {…}, "inputs": {…}, "strategy": {…}},
//	 "secrets": ["GITHUB_TOKEN", "MY_SECRET"],  // names only
//	 "outputs": {"version": "${{ steps.v.outputs.version }}"},
//	 "steps": [
//	   {"id": "v", "name": "Compute", "if": "", "continue-on-error": false,
//	    "timeout-minutes": 5, "env": {"A": "1"}, "run": "echo …",
//	    "shell": "", "working-directory": ""},
//	   {"name": "Checkout", "uses": "actions/checkout@v4",
//	    "with": {"repository": "o/r", "ref": "main", "path": "", "fetch-depth": "1",
//	             "submodules": "false", "token": "${{ secrets.GITHUB_TOKEN }}"}},
//	   {"name": "Legacy", "kdl": {"path": ".solstice/workflow.kdl", "job": "illumos-build"}}],
//	 "checkout": {"url": "https://forge.example/o/r.git", "sha": "…",
//	              "ref": "refs/heads/main", "bundle": ""}}
//
// Rules the validator enforces (every problem is reported, each as
// "plan: <field path>: <problem>"):
//
//   - a step is exactly one of: run (a script), uses (only
//     actions/checkout@<any ref>: the agent has a built-in checkout), or
//     kdl (a job of a legacy .solstice/workflow.kdl file in the workspace);
//     with is for uses steps only, shell and working-directory for run
//     steps only;
//   - shell is bash, sh, python, pwsh, powershell, cmd, or a command whose
//     arguments contain {0} (like GitHub, "perl {0}"), or an expression;
//   - continue-on-error is a boolean or an expression string;
//     timeout-minutes a positive number or an expression string (JSON
//     numbers and booleans are accepted where GitHub has them, strings
//     containing ${{ }} are evaluated by the agent just before the step);
//   - step ids are unique and look like GitHub's ([A-Za-z_][A-Za-z0-9_-]*);
//   - secret names are unique identifiers, and contexts.github has no
//     "token": secret values never appear in a plan. The agent reads them
//     from its stdin and sets github.token from the GITHUB_TOKEN secret;
//   - contexts holds only github, matrix, needs, vars, inputs and strategy
//     (env, secrets, steps, job and runner are the agent's), each an object;
//   - a checkout step of the workflow's own repository needs "checkout"
//     with a url or a bundle; one with with.repository naming another
//     repository is fetched from github.server_url.
//
// "checkout.bundle" is the path, inside the guest, of a git bundle the
// driver uploaded: the checkout then clones from that file instead of the
// network (used by `solstice run` for local repositories).
//
// Plans travel as a Nomad dispatch payload of at most 16 KiB:
// EncodeCompressed writes gzip-compressed JSON and DecodeAuto reads either
// form.
package plan

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// Version is the plan format this package reads and writes.
const Version = 1

// MaxDecoded bounds a decoded plan, so a hostile gzip stream cannot
// exhaust the guest's memory.
const MaxDecoded = 16 << 20

// Plan is one job to run.
type Plan struct {
	Version              int                        `json:"version"`
	Job                  Job                        `json:"job"`
	TimeoutMinutes       float64                    `json:"timeout_minutes,omitempty"`
	CancelTimeoutMinutes float64                    `json:"cancel_timeout_minutes,omitempty"`
	Defaults             Defaults                   `json:"defaults,omitzero"`
	Env                  []EnvVar                   `json:"env,omitempty"`
	Contexts             map[string]json.RawMessage `json:"contexts,omitempty"`
	Secrets              []string                   `json:"secrets,omitempty"`
	Outputs              map[string]string          `json:"outputs,omitempty"`
	Steps                []Step                     `json:"steps"`
	Checkout             *Checkout                  `json:"checkout,omitempty"`
}

// Job names the job.
type Job struct {
	ID       string `json:"id"`
	Name     string `json:"name,omitempty"`
	Workflow string `json:"workflow,omitempty"`
}

// Defaults are the job's (or workflow's) `defaults`.
type Defaults struct {
	Run RunDefaults `json:"run,omitzero"`
}

// RunDefaults are `defaults.run`.
type RunDefaults struct {
	Shell            string `json:"shell,omitempty"`
	WorkingDirectory string `json:"working-directory,omitempty"`
}

// EnvVar is one workflow- or job-level environment variable.
type EnvVar struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// UnmarshalJSON accepts a number or boolean value as its text, as YAML
// writers often produce them.
func (e *EnvVar) UnmarshalJSON(data []byte) error {
	var raw struct {
		Name  string          `json:"name"`
		Value json.RawMessage `json:"value"`
	}
	if err := strictUnmarshal(data, &raw); err != nil {
		return err
	}
	v, err := scalarText(raw.Value)
	if err != nil {
		return fmt.Errorf("env %q: %w", raw.Name, err)
	}
	e.Name, e.Value = raw.Name, v
	return nil
}

// Step is one step of the job.
type Step struct {
	ID               string  `json:"id,omitempty"`
	Name             string  `json:"name,omitempty"`
	If               string  `json:"if,omitempty"`
	ContinueOnError  Scalar  `json:"continue-on-error,omitempty"`
	TimeoutMinutes   Scalar  `json:"timeout-minutes,omitempty"`
	Env              Strings `json:"env,omitempty"`
	Run              string  `json:"run,omitempty"`
	Shell            string  `json:"shell,omitempty"`
	WorkingDirectory string  `json:"working-directory,omitempty"`
	Uses             string  `json:"uses,omitempty"`
	With             Strings `json:"with,omitempty"`
	KDL              *KDL    `json:"kdl,omitempty"`
}

// KDL names a job of a legacy Solstice KDL workflow file.
type KDL struct {
	Path string `json:"path"` // relative to the workspace
	Job  string `json:"job"`
}

// Checkout says where the workflow's repository comes from.
type Checkout struct {
	URL    string `json:"url,omitempty"`
	SHA    string `json:"sha,omitempty"`
	Ref    string `json:"ref,omitempty"`
	Bundle string `json:"bundle,omitempty"`
}

// Scalar is a value GitHub lets be a literal or an expression: it holds
// the literal's text ("true", "5") or the expression string. In JSON it is
// a boolean, a number or a string.
type Scalar string

// UnmarshalJSON implements json.Unmarshaler.
func (s *Scalar) UnmarshalJSON(data []byte) error {
	v, err := scalarText(data)
	*s = Scalar(v)
	return err
}

// MarshalJSON writes booleans and numbers as such, anything else as a
// string.
func (s Scalar) MarshalJSON() ([]byte, error) {
	switch v := string(s); {
	case v == "true" || v == "false":
		return []byte(v), nil
	case isJSONNumber(v):
		return []byte(v), nil
	default:
		return json.Marshal(v)
	}
}

// Strings is a map of strings (env, with) whose JSON values may also be
// numbers or booleans, kept as their text.
type Strings map[string]string

// UnmarshalJSON implements json.Unmarshaler.
func (s *Strings) UnmarshalJSON(data []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	if raw == nil {
		*s = nil
		return nil
	}
	out := make(Strings, len(raw))
	for k, v := range raw {
		text, err := scalarText(v)
		if err != nil {
			return fmt.Errorf("%q: %w", k, err)
		}
		out[k] = text
	}
	*s = out
	return nil
}

// scalarText turns a JSON string, number, boolean or null into text.
func scalarText(data []byte) (string, error) {
	data = bytes.TrimSpace(data)
	switch {
	case len(data) == 0 || string(data) == "null":
		return "", nil
	case data[0] == '"':
		var s string
		err := json.Unmarshal(data, &s)
		return s, err
	case string(data) == "true" || string(data) == "false" || isJSONNumber(string(data)):
		return string(data), nil
	}
	return "", fmt.Errorf("want a string, number or boolean, got %s", data)
}

func isJSONNumber(s string) bool {
	if s == "" || !json.Valid([]byte(s)) {
		return false
	}
	_, err := strconv.ParseFloat(s, 64)
	return err == nil
}

// Decode reads a plan as JSON and validates it. Unknown fields are
// errors: a field the agent would silently ignore is a bug in the plan's
// producer.
func Decode(r io.Reader) (*Plan, error) {
	var p Plan
	dec := json.NewDecoder(io.LimitReader(r, MaxDecoded))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("plan: decode: %w", err)
	}
	if dec.More() {
		return nil, fmt.Errorf("plan: decode: data after the plan")
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}

// DecodeAuto is Decode for a plan that may be gzip-compressed.
func DecodeAuto(r io.Reader) (*Plan, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("plan: decompress: %w", err)
		}
		defer zr.Close()
		return Decode(zr)
	}
	return Decode(br)
}

// Encode writes p as compact JSON (no validation: see Validate).
func Encode(w io.Writer, p *Plan) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("plan: encode: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("plan: encode: %w", err)
	}
	return nil
}

// EncodeCompressed writes p as gzip-compressed compact JSON.
func EncodeCompressed(w io.Writer, p *Plan) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("plan: compress: %w", err)
	}
	if err := Encode(zw, p); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return fmt.Errorf("plan: compress: %w", err)
	}
	return nil
}

func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}
