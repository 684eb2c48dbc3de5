package contract

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Contexts a plan may carry; the agent makes the others.
var planContexts = map[string]bool{
	"github": true, "matrix": true, "needs": true, "vars": true, "inputs": true, "strategy": true,
}

// BuiltinShells are the shell names GitHub knows without a {0} format.
var BuiltinShells = []string{"bash", "sh", "python", "pwsh", "powershell", "cmd"}

var (
	idPattern     = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)
	secretPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// CheckoutInputs are the actions/checkout inputs the built-in checkout
// implements.
var CheckoutInputs = []string{
	"repository", "ref", "token", "path", "fetch-depth", "fetch-tags", "submodules",
	"clean", "persist-credentials", "set-safe-directory", "show-progress", "github-server-url",
}

// unsupportedCheckoutInputs are actions/checkout inputs the built-in
// checkout does not implement, with the value that means "not used".
var unsupportedCheckoutInputs = map[string]string{
	"ssh-key": "", "ssh-known-hosts": "", "ssh-strict": "true", "ssh-user": "git",
	"sparse-checkout": "", "sparse-checkout-cone-mode": "true", "filter": "", "lfs": "false",
}

// Validate checks everything that can be checked before the job runs and
// reports every problem found, one per line.
func (p *Plan) Validate() error {
	v := &validator{}
	v.plan(p)
	return errors.Join(v.errs...)
}

type validator struct{ errs []error }

func (v *validator) errorf(path, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	v.errs = append(v.errs, errors.New("plan: "+msg))
}

func (v *validator) plan(p *Plan) {
	if p.Version != PlanVersion {
		v.errorf("version", "unsupported plan version %d (this agent reads version %d)", p.Version, PlanVersion)
	}
	if p.Job.ID == "" {
		v.errorf("job.id", "missing")
	}
	if p.TimeoutMinutes < 0 {
		v.errorf("timeout_minutes", "must not be negative")
	}
	if p.CancelTimeoutMinutes < 0 {
		v.errorf("cancel_timeout_minutes", "must not be negative")
	}
	if s := p.Defaults.Run.Shell; s != "" {
		if err := CheckShell(s); err != nil {
			v.errorf("defaults.run.shell", "%v", err)
		}
	}
	if err := CheckGuestSettings(p.Guest); err != nil {
		v.errorf("guest", "%v", err)
	}
	if err := CheckDebugSSH(p.Debug); err != nil {
		v.errorf("debug", "%v", err)
	}
	v.env(p.Env)
	v.contexts(p.Contexts)
	v.secrets(p.Secrets)
	for _, name := range slices.Sorted(maps.Keys(p.Outputs)) {
		if strings.TrimSpace(name) == "" {
			v.errorf("outputs", "an output has an empty name")
		}
	}
	v.steps(p)
}

func (v *validator) env(env []EnvVar) {
	for i, e := range env {
		if err := checkEnvName(e.Name); err != nil {
			v.errorf(fmt.Sprintf("env[%d].name", i), "%v", err)
		}
	}
}

func checkEnvName(name string) error {
	if name == "" {
		return errors.New("empty variable name")
	}
	if strings.ContainsAny(name, "=\x00") {
		return fmt.Errorf("invalid variable name %q", name)
	}
	return nil
}

func (v *validator) contexts(ctxs map[string]json.RawMessage) {
	for _, name := range slices.Sorted(maps.Keys(ctxs)) {
		raw := ctxs[name]
		path := "contexts." + name
		if !planContexts[name] {
			v.errorf(path, "unknown context (a plan carries github, matrix, needs, vars, inputs and strategy)")
			continue
		}
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			v.errorf(path, "must be a JSON object")
			continue
		}
		if _, ok := obj["token"]; ok && name == "github" {
			v.errorf(path+".token", "secret values must not be in a plan: pass GITHUB_TOKEN as a secret on the agent's stdin")
		}
	}
}

func (v *validator) secrets(names []string) {
	seen := map[string]bool{}
	for i, n := range names {
		path := fmt.Sprintf("secrets[%d]", i)
		if !secretPattern.MatchString(n) {
			v.errorf(path, "invalid secret name %q", n)
		}
		if seen[strings.ToUpper(n)] {
			v.errorf(path, "duplicate secret name %q", n)
		}
		seen[strings.ToUpper(n)] = true
	}
}

func (v *validator) steps(p *Plan) {
	if len(p.Steps) == 0 {
		v.errorf("steps", "a job needs at least one step")
	}
	ids := map[string]bool{}
	for i := range p.Steps {
		s := &p.Steps[i]
		path := fmt.Sprintf("steps[%d]", i)
		if s.ID != "" {
			if !idPattern.MatchString(s.ID) {
				v.errorf(path+".id", "invalid step id %q: it must start with a letter or _ and contain only letters, digits, - and _", s.ID)
			}
			if ids[strings.ToLower(s.ID)] {
				v.errorf(path+".id", "duplicate step id %q", s.ID)
			}
			ids[strings.ToLower(s.ID)] = true
		}
		v.stepCommon(path, s)
		switch kinds := kindCount(s); {
		case kinds == 0:
			v.errorf(path, "a step needs one of run, uses or kdl")
		case kinds > 1:
			v.errorf(path, "a step has exactly one of run, uses or kdl")
		case s.Uses != "":
			v.usesStep(path, s, p)
		case s.KDL != nil:
			v.kdlStep(path, s)
		default:
			v.runStep(path, s)
		}
	}
}

func kindCount(s *Step) int {
	n := 0
	for _, set := range []bool{s.Run != "", s.Uses != "", s.KDL != nil} {
		if set {
			n++
		}
	}
	return n
}

func (v *validator) stepCommon(path string, s *Step) {
	for _, name := range slices.Sorted(maps.Keys(s.Env)) {
		if err := checkEnvName(name); err != nil {
			v.errorf(path+".env", "%v", err)
		}
	}
	if c := string(s.ContinueOnError); c != "" && c != "true" && c != "false" && !IsExpression(c) {
		v.errorf(path+".continue-on-error", "want a boolean or an expression, got %q", c)
	}
	if t := string(s.TimeoutMinutes); t != "" && !IsExpression(t) {
		if f, err := strconv.ParseFloat(t, 64); err != nil || f <= 0 {
			v.errorf(path+".timeout-minutes", "want a positive number of minutes or an expression, got %q", t)
		}
	}
}

func (v *validator) runStep(path string, s *Step) {
	if len(s.With) > 0 {
		v.errorf(path+".with", "only uses steps take inputs")
	}
	if s.Shell != "" && !IsExpression(s.Shell) {
		if err := CheckShell(s.Shell); err != nil {
			v.errorf(path+".shell", "%v", err)
		}
	}
}

func (v *validator) kdlStep(path string, s *Step) {
	if s.KDL.Path == "" {
		v.errorf(path+".kdl.path", "missing")
	}
	if s.KDL.Job == "" {
		v.errorf(path+".kdl.job", "missing")
	}
	v.noRunFields(path, s)
}

func (v *validator) noRunFields(path string, s *Step) {
	if s.Shell != "" {
		v.errorf(path+".shell", "only run steps take a shell")
	}
	if s.WorkingDirectory != "" {
		v.errorf(path+".working-directory", "only run steps take a working-directory")
	}
	if len(s.With) > 0 && s.Uses == "" {
		v.errorf(path+".with", "only uses steps take inputs")
	}
}

func (v *validator) usesStep(path string, s *Step, p *Plan) {
	switch action := BuiltinAction(s.Uses); action {
	case ActionCheckout:
	case ActionUploadArtifact, ActionDownloadArtifact:
		v.artifactStep(path, s, action)
		return
	case ActionCache, ActionCacheRestore, ActionCacheSave:
		v.cacheStep(path, s, action)
		return
	default:
		v.errorf(path, "%s", UnsupportedActionError(s.Uses))
		return
	}
	v.noRunFields(path, s)
	for _, name := range slices.Sorted(maps.Keys(s.With)) {
		value := s.With[name]
		if def, ok := unsupportedCheckoutInputs[name]; ok && value != def && value != "" {
			v.errorf(path+".with."+name, "input %q of actions/checkout is not supported by Solstice's built-in checkout", name)
		}
	}
	if d := s.With["fetch-depth"]; d != "" && !IsExpression(d) {
		if n, err := strconv.Atoi(d); err != nil || n < 0 {
			v.errorf(path+".with.fetch-depth", "want a whole number (0 = all history), got %q", d)
		}
	}
	if m := s.With["submodules"]; m != "" && !IsExpression(m) {
		switch strings.ToLower(m) {
		case "true", "false", "recursive":
		default:
			v.errorf(path+".with.submodules", "want true, false or recursive, got %q", m)
		}
	}
	if s.With["repository"] == "" && (p.Checkout == nil || p.Checkout.URL == "" && p.Checkout.Bundle == "") {
		v.errorf(path, "checking out the workflow's repository needs the plan's checkout.url or checkout.bundle")
	}
}

// IsCheckout reports whether uses names actions/checkout (at any ref).
func IsCheckout(uses string) bool {
	name, ref, ok := strings.Cut(uses, "@")
	return ok && ref != "" && strings.EqualFold(name, "actions/checkout")
}

// IsExpression reports whether s holds a ${{ }} expression.
func IsExpression(s string) bool { return strings.Contains(s, "${{") }

// CheckShell checks a shell option the way GitHub's runner does: a
// built-in name, or a command and arguments (split at the first space)
// whose arguments contain the {0} placeholder for the script path.
func CheckShell(shell string) error {
	cmd, args, _ := strings.Cut(shell, " ")
	args = strings.TrimSpace(args)
	if args == "" {
		for _, b := range BuiltinShells {
			if cmd == b {
				return nil
			}
		}
	}
	if strings.Contains(args, "{0}") {
		return nil
	}
	if args == "" {
		return fmt.Errorf("unknown shell %q: use bash, sh, python, pwsh, or a command with {0} for the script, like %q", shell, cmd+" {0}")
	}
	return fmt.Errorf("invalid shell option %q: the arguments must contain {0} for the script path", shell)
}
