package contract

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
)

// PlanVersion is the plan format this package reads and writes.
const PlanVersion = 1

// MaxPlanDecoded bounds a decoded plan, so a hostile gzip stream cannot
// exhaust the guest's memory.
const MaxPlanDecoded = 16 << 20

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
	// Guest is set by the driver from the catalog image, not by a shim:
	// optional, so plans without it stay version 1 and mean what they did.
	Guest *GuestSettings `json:"guest,omitempty"`
	// Debug asks for a debug SSH session when the job fails; the driver
	// acts on it and drops it from the plan the guest gets.
	Debug *DebugSSH `json:"debug,omitempty"`
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

// DecodePlan reads a plan as JSON and validates it. Unknown fields are
// errors: a field the agent would silently ignore is a bug in the plan's
// producer.
func DecodePlan(r io.Reader) (*Plan, error) {
	var p Plan
	dec := json.NewDecoder(io.LimitReader(r, MaxPlanDecoded))
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

// DecodePlanAuto is Decode for a plan that may be gzip-compressed.
func DecodePlanAuto(r io.Reader) (*Plan, error) {
	br := bufio.NewReader(r)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("plan: decompress: %w", err)
		}
		defer zr.Close()
		return DecodePlan(zr)
	}
	return DecodePlan(br)
}

// EncodePlan writes p as compact JSON (no validation: see Validate).
func EncodePlan(w io.Writer, p *Plan) error {
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("plan: encode: %w", err)
	}
	if _, err := w.Write(data); err != nil {
		return fmt.Errorf("plan: encode: %w", err)
	}
	return nil
}

// EncodePlanCompressed writes p as gzip-compressed compact JSON.
func EncodePlanCompressed(w io.Writer, p *Plan) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return fmt.Errorf("plan: compress: %w", err)
	}
	if err := EncodePlan(zw, p); err != nil {
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
