//go:build e2e

package e2e

// The harness for ACL-enabled agents: bootstrap, a view of the agent in a
// namespace, the solstice CLI and the shims' service job as an operator
// runs them there, and the shim's own workload identity token.

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/nomadagent"
)

// bootstrapACL makes the agent's management token, which its Client (and
// so Nomad.API and nomadCLI) uses from then on.
func bootstrapACL(t testing.TB, ctx context.Context, agent *nomadagent.Agent) {
	t.Helper()
	if _, err := agent.Bootstrap(ctx); err != nil {
		agent.Stop(10 * time.Second)
		t.Fatalf("%v", err)
	}
}

// nsView is an agent seen from one namespace, with the management token.
type nsView struct {
	*Nomad
	ns string
}

// inNamespace creates namespace ns (unless it is default) and returns a
// view whose API works in it. When t ends every job of the namespace is
// purged and its allocations waited for, so no VM outlives the test
// (the agent's own cleanup purges only the default namespace).
func (n *Nomad) inNamespace(t *testing.T, ns string) *nsView {
	t.Helper()
	if ns != api.DefaultNamespace {
		if _, err := n.API.Namespaces().Register(&api.Namespace{Name: ns, Description: "e2e"}, nil); err != nil {
			t.Fatalf("create namespace %s: %v", ns, err)
		}
	}
	c, err := api.NewClient(&api.Config{Address: n.Addr, SecretID: n.Token, Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	v := &nsView{Nomad: &Nomad{Agent: n.Agent, API: c, t: t}, ns: ns}
	t.Cleanup(v.purge)
	return v
}

func (v *nsView) purge() {
	jobs, _, err := v.API.Jobs().List(nil)
	if err != nil {
		v.t.Logf("list jobs of namespace %s: %v", v.ns, err)
		return
	}
	for _, j := range jobs {
		v.API.Jobs().Deregister(j.ID, true, nil)
	}
	v.waitNoRunningAllocs(60 * time.Second)
}

// env is the environment of a CLI (solstice's or nomad's) using token in
// the view's namespace, as an operator's shell would have it.
func (v *nsView) env(token string) []string {
	return append(os.Environ(), "NOMAD_ADDR="+v.Addr, "NOMAD_TOKEN="+token, "NOMAD_NAMESPACE="+v.ns)
}

// cli runs a CLI binary with token and returns its combined output.
func (v *nsView) cli(token, binary string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, args...)
	cmd.Env = v.env(token)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// solstice runs bin/solstice with token.
func (v *nsView) solstice(token string, args ...string) (string, error) {
	return v.cli(token, filepath.Join(env(v.t, "SOLSTICE_BIN"), "solstice"), args...)
}

// nomadAs runs the nomad CLI with token.
func (v *nsView) nomadAs(token string, args ...string) (string, error) {
	return v.cli(token, env(v.t, "SOLSTICE_NOMAD"), args...)
}

// rawGet sends GET path?namespace=NS with token straight to the HTTP
// API (no api package mapping of statuses) and returns status and body.
func (v *nsView) rawGet(t *testing.T, token, path string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(testContext(t, time.Minute), "GET", v.Addr+path+"?namespace="+url.QueryEscape(v.ns), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Nomad-Token", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, strings.TrimSpace(string(body))
}

// runShimsOnIdentity runs jobspecs/runner-shims.nomad.hcl in the view's
// namespace as the ACL section of the README says: the job's Variable
// holds the Forgejo registration token and no Nomad token; the shims get
// theirs from their workload identity.
func (v *nsView) runShimsOnIdentity(t *testing.T, g *Gitea, runner, githubURL string) {
	t.Helper()
	vr := &api.Variable{Path: "nomad/jobs/" + nomad.ShimsJob, Items: api.VariableItems{
		"forgejo_registration_token": g.RegistrationToken(),
	}}
	if _, _, err := v.API.Variables().Create(vr, nil); err != nil {
		t.Fatalf("create the shims' Variable: %v", err)
	}
	out, err := v.nomadAs(v.Token, "job", "run", "-detach",
		"-var", "forgejo_url="+g.URL, "-var", "github_url="+githubURL, "-var", "runner_name="+runner,
		"-var", "capacity=2", "-var", "namespace="+v.ns,
		"-var", "solstice_binary="+filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"),
		"-var", "nomad_addr="+v.Addr, "../jobspecs/runner-shims.nomad.hcl")
	if err != nil {
		t.Fatalf("nomad job run runner-shims: %v\n%s", err, out)
	}
}

// shimAlloc waits for the running allocation of the shims' group.
func (v *nsView) shimAlloc(t *testing.T, group string) *api.AllocationListStub {
	t.Helper()
	var found *api.AllocationListStub
	waitFor(t, 2*time.Minute, "the "+group+" shim to run", func() bool {
		stubs, _, err := v.API.Jobs().Allocations(nomad.ShimsJob, false, nil)
		for _, s := range stubs {
			if err == nil && s.TaskGroup == group && s.ClientStatus == api.AllocClientStatusRunning {
				found = s
				return true
			}
		}
		return false
	})
	return found
}

// taskEnv reads the environment of the process Nomad runs for an
// allocation's task (raw_exec: a plain host process), as the shim sees it.
func taskEnv(t *testing.T, allocID, task string) map[string]string {
	t.Helper()
	_, e := taskProcess(t, allocID, task, 0)
	return e
}

// taskProcess waits for the solstice process Nomad runs for an
// allocation's task, other than process not (0: any), and returns its PID
// and environment.
func taskProcess(t *testing.T, allocID, task string, not int) (int, map[string]string) {
	t.Helper()
	var found map[string]string
	var pid int
	waitFor(t, time.Minute, "the process of task "+task, func() bool {
		procs, _ := filepath.Glob("/proc/[0-9]*/environ")
		for _, p := range procs {
			data, err := os.ReadFile(p)
			if err != nil {
				continue
			}
			e := map[string]string{}
			for _, kv := range strings.Split(string(data), "\x00") {
				if k, v, ok := strings.Cut(kv, "="); ok {
					e[k] = v
				}
			}
			pid, _ = strconv.Atoi(filepath.Base(filepath.Dir(p)))
			if e["NOMAD_ALLOC_ID"] == allocID && e["NOMAD_TASK_NAME"] == task && pid != not && isSolstice(p) {
				found = e
				return true
			}
		}
		return false
	})
	return pid, found
}

// isSolstice tells the shim's process from the executor Nomad runs it
// under, which has the same environment.
func isSolstice(environPath string) bool {
	exe, err := os.Readlink(filepath.Join(filepath.Dir(environPath), "exe"))
	return err == nil && filepath.Base(exe) == "solstice"
}

// isJWT reports whether a token is a workload identity (a signed JWT),
// not an ACL token's secret ID (a UUID).
func isJWT(token string) bool {
	parts := strings.Split(token, ".")
	return len(parts) == 3 && len(parts[0]) > 10 && len(parts[1]) > 10 && len(parts[2]) > 10
}
