//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/githubfake"
	"github.com/solstice-ci/solstice/jobspecs"
	"github.com/solstice-ci/solstice/shim/nomad"
)

const aclWorkflow = `name: acl
on: push
jobs:
  build:
    runs-on: solstice-test
    steps:
      - uses: actions/checkout@v4
      - run: |
          test -f README.md && echo "checked out $(git rev-parse HEAD)"
          echo "secret is ${{ secrets.MY_SECRET }}"
`

const (
	aclGiteaSecret = "gitea-acl-s3cr3t"
	aclRunSecret   = "run-acl-s3cr3t"
	// otherVar is a Variable outside every prefix Solstice's policies
	// grant, as an operator's other jobs would have.
	otherVar = "ops/db"
)

// TestACLCluster runs Solstice on an agent with ACLs on, as the README's
// "ACL-enabled clusters" section sets it up, once in the default
// namespace and once in another: jobs sync (with the management token)
// registers the parent jobs and applies the policies; the shims run as the
// service job on their workload identity, with no Nomad token given to
// them; a Gitea workflow and a GitHub job with secrets succeed, masked;
// the shim's identity is refused anything outside its policy, and a
// dispatch anything outside solstice/secrets/; solstice run --secret
// works, and without the parent job's policy fails fast, saying why.
func TestACLCluster(t *testing.T) {
	alongside(t)
	g := StartGitea(t)
	n := StartNomad(t, WithACL(), WithRawExec(), WithPlugin(pluginConfig(t, pluginOpts{})))
	if _, err := n.WaitNode(testContext(t, 2*time.Minute), "solstice-vm"); err != nil {
		t.Fatal(err)
	}
	for _, ns := range []string{"default", "ci"} {
		t.Run(ns, func(t *testing.T) {
			start := time.Now()
			v := n.inNamespace(t, ns)
			v.syncAsOperator(t)
			if ns == "ci" { // the namespace of docs/acl.md's command
				v.shimsPolicyByHand(t)
			}
			other := &api.Variable{Path: otherVar, Items: api.VariableItems{"password": "not-for-ci"}}
			if _, _, err := v.API.Variables().Create(other, nil); err != nil {
				t.Fatal(err)
			}
			v.forgesOnIdentity(t, g)
			shimToken := v.shimIdentityConfined(t)
			v.dispatchConfined(t, shimToken)
			v.runWithSecret(t)
			t.Logf("namespace %s took %s", ns, time.Since(start).Round(time.Second))
		})
	}
}

// syncAsOperator runs solstice jobs sync with the management token and
// checks it applied the policies, attached to their jobs.
func (v *nsView) syncAsOperator(t *testing.T) {
	t.Helper()
	out, err := v.solstice(v.Token, "jobs", "sync", "-dir", "../jobspecs/labels", "-test-labels")
	t.Logf("solstice jobs sync:\n%s", out)
	if err != nil {
		t.Fatalf("solstice jobs sync: %v", err)
	}
	for _, job := range []string{"solstice-solstice-test", nomad.ShimsJob} {
		name := nomad.PolicyName(job, v.ns)
		if want := fmt.Sprintf("applied ACL policy %s to job %s in namespace %s", name, job, v.ns); !strings.Contains(out, want) {
			t.Errorf("jobs sync output lacks %q", want)
		}
		p, _, err := v.API.ACLPolicies().Info(name, nil)
		if err != nil || p.JobACL == nil || p.JobACL.JobID != job || p.JobACL.Namespace != v.ns {
			t.Fatalf("policy %s: %+v %v, want attached to %s in %s", name, p, err, job, v.ns)
		}
	}
}

// shimsPolicyByHand replaces the shims' policy jobs sync applied with the
// one docs/acl.md applies by hand: nomad acl policy apply -namespace ci
// -job solstice-runners solstice-runners-ci shims.hcl, shims.hcl being
// jobspecs/acl/shims.policy.hcl with ${namespace} replaced. It is the same
// policy, attached to the same job; the shims then run on it (the tests
// that follow).
func (v *nsView) shimsPolicyByHand(t *testing.T) {
	t.Helper()
	name := nomad.PolicyName(nomad.ShimsJob, v.ns)
	synced, _, err := v.API.ACLPolicies().Info(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.API.ACLPolicies().Delete(name, nil); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../jobspecs/acl/shims.policy.hcl")
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "shims.hcl")
	if err := os.WriteFile(file, []byte(strings.ReplaceAll(string(src), "${namespace}", v.ns)), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := v.nomadAs(v.Token, "acl", "policy", "apply", "-namespace", v.ns, "-job", nomad.ShimsJob, name, file)
	t.Logf("nomad acl policy apply:\n%s", out)
	if err != nil {
		t.Fatalf("nomad acl policy apply: %v", err)
	}
	p, _, err := v.API.ACLPolicies().Info(name, nil)
	if err != nil || p.JobACL == nil || p.JobACL.JobID != nomad.ShimsJob || p.JobACL.Namespace != v.ns {
		t.Fatalf("policy %s applied by hand: %+v %v, want attached to %s in %s", name, p, err, nomad.ShimsJob, v.ns)
	}
	if strings.TrimSpace(p.Rules) != strings.TrimSpace(synced.Rules) {
		t.Errorf("policy %s by hand differs from what jobs sync applied:\n%s\nsync:\n%s", name, p.Rules, synced.Rules)
	}
}

// forgesOnIdentity runs both shims as the service job and one job through
// each forge, at once.
func (v *nsView) forgesOnIdentity(t *testing.T, g *Gitea) {
	t.Helper()
	gh := registerGitHubRunner(t, v.Nomad)
	v.runShimsOnIdentity(t, g, "acl-"+v.ns, gh.url)
	repo := "acl-" + v.ns
	g.CreateRepo(repo)
	g.API("PUT", fmt.Sprintf("repos/%s/%s/actions/secrets/MY_SECRET", g.User, repo), map[string]any{"data": aclGiteaSecret}, 201, nil)
	g.PushFile(repo, ".gitea/workflows/acl.yml", aclWorkflow)
	ghJob := gh.fake.QueueJob(githubfake.JobSpec{
		Name: "acl", Labels: []string{"self-hosted", "solstice-test"},
		ContextData: map[string]any{"github": map[string]any{"repository": ghScope, "sha": strings.Repeat("a", 40), "ref": "refs/heads/main", "workflow": "acl"}},
		Secrets:     map[string]string{"MY_SECRET": ghSecret},
		Steps:       []githubfake.Step{{DisplayName: "Secret", Run: "echo \"secret is ${{ secrets.MY_SECRET }}\""}},
	})

	jobs := g.WaitJobsDone(repo, 1, 10*time.Minute)
	log := g.JobLog(repo, jobs[0].ID)
	t.Logf("Gitea job %s: %s\n%s", jobs[0].Name, jobs[0].Conclusion, log)
	if jobs[0].Conclusion != "success" {
		t.Errorf("Gitea job: %s, want success", jobs[0].Conclusion)
	}
	for _, want := range []string{"checked out ", "secret is ***", "Job succeeded"} {
		if !strings.Contains(log, want) {
			t.Errorf("Gitea job log lacks %q", want)
		}
	}
	res := gh.wait(t, ghJob, 10*time.Minute)
	secretLog := stepLog(t, res, "Secret")
	t.Logf("GitHub job %s: %s %v\n%s", ghJob.ID(), res.Conclusion, stepsOf(res), secretLog)
	if res.Conclusion != "succeeded" || !strings.Contains(secretLog, "secret is ***") {
		t.Errorf("GitHub job: %s %v, Secret step log:\n%s", res.Conclusion, stepsOf(res), secretLog)
	}
	for where, text := range map[string]string{"Gitea log": log, "GitHub step log": secretLog} {
		if strings.Contains(text, aclGiteaSecret) || strings.Contains(text, ghSecret) {
			t.Errorf("a secret's value is in the %s", where)
		}
	}
	assertNoSecretsInNomad(t, v.Nomad, aclGiteaSecret)
	assertNoSecretsInNomad(t, v.Nomad, ghSecret)
	gh.assertNothingRejected(t)
}

// shimIdentityConfined checks the shim runs on its workload identity and
// that this identity is refused, with a clear error, what its policy does
// not grant. It returns the shim's token.
func (v *nsView) shimIdentityConfined(t *testing.T) string {
	t.Helper()
	vr, _, err := v.API.Variables().Read("nomad/jobs/"+nomad.ShimsJob, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := vr.Items["nomad_token"]; ok {
		t.Fatal("the shims' Variable holds a nomad_token")
	}
	alloc := v.shimAlloc(t, "forgejo")
	e := taskEnv(t, alloc.ID, "shim")
	token := e["NOMAD_TOKEN"]
	if !isJWT(token) || e["NOMAD_NAMESPACE"] != v.ns {
		t.Fatalf("the shim's NOMAD_TOKEN is not a workload identity (%d bytes) or its namespace %q is not %q", len(token), e["NOMAD_NAMESPACE"], v.ns)
	}
	// Nomad's api package and CLI report a Variable they may not read as
	// missing; its HTTP API says 403.
	if code, body := v.rawGet(t, token, "/v1/var/"+otherVar); code != 403 || !strings.Contains(body, "Permission denied") {
		t.Errorf("the shim's identity reading Variable %s: %d %s, want 403 Permission denied", otherVar, code, body)
	} else {
		t.Logf("the shim's identity reading Variable %s: %d %s", otherVar, code, body)
	}
	refused := []struct {
		what string
		run  func() (string, error)
		want []string // all of them, when the error is ours
		any  []string // one of them, when it is Nomad's
	}{
		{"register the parent jobs", func() (string, error) {
			return v.solstice(token, "jobs", "sync", "-dir", "../jobspecs/labels")
		}, []string{"permission denied", "capability", "not a workload identity"}, nil},
		{"register an arbitrary job", func() (string, error) {
			f := filepath.Join(t.TempDir(), "evil.nomad.hcl")
			os.WriteFile(f, []byte(`job "evil" {
  type = "batch"
  group "g" {
    task "t" {
      driver = "raw_exec"
      config { command = "/bin/true" }
    }
  }
}`), 0o644)
			return v.nomadAs(token, "job", "run", "-detach", f)
		}, nil, []string{"Permission denied", "ACL token is invalid"}},
		{"list the nodes", func() (string, error) { return v.nomadAs(token, "node", "status") }, nil, []string{"Permission denied", "ACL token is invalid"}},
	}
	for _, r := range refused {
		out, err := r.run()
		t.Logf("the shim's identity tries to %s: exit %d\n%s", r.what, exitCode(err), out)
		if err == nil {
			t.Errorf("the shim's identity may %s", r.what)
			continue
		}
		for _, w := range r.want {
			if !strings.Contains(out, w) {
				t.Errorf("refusing to %s: the error lacks %q", r.what, w)
			}
		}
		if len(r.any) > 0 && !slices.ContainsFunc(r.any, func(w string) bool { return strings.Contains(out, w) }) {
			t.Errorf("refusing to %s: the error has none of %q", r.what, r.any)
		}
	}
	if _, _, err := v.API.Jobs().Info("evil", nil); !nomad.IsNotFound(err) {
		t.Errorf("job evil was registered: %v", err)
	}
	return token
}

const probeParent = `job "solstice-probe" {
  type = "batch"
  meta {
    solstice_label = "probe"
  }
  parameterized {
    payload       = "required"
    meta_required = ["solstice_forge", "solstice_instance", "solstice_task_id", "solstice_job_name", "solstice_secrets_key"]
    meta_optional = ["solstice_repository", "solstice_run", "solstice_bundle_url"]
  }
  group "job" {
    restart {
      attempts = 0
      mode     = "fail"
    }
    reschedule {
      attempts  = 0
      unlimited = false
    }
    task "job" {
      driver = "raw_exec"
      config {
        command = "/bin/true"
      }
      template {
        destination = "secrets/own.json"
        data        = "{{ with nomadVar (printf \"solstice/secrets/%s\" (env \"NOMAD_META_solstice_secrets_key\")) }}{{ .ItemsMap | toJSON }}{{ end }}"
      }
      template {
        destination = "secrets/other.json"
        data        = "{{ with nomadVar \"` + otherVar + `\" }}{{ .ItemsMap | toJSON }}{{ end }}"
      }
    }
  }
}
`

// dispatchConfined has the shim's identity dispatch a label whose task
// reads its own secrets and another Variable: with the parent policy only
// the secrets render, and the job fails fast, naming what it could not
// read, and is stopped by the shim's identity (which may not deregister).
func (v *nsView) dispatchConfined(t *testing.T, shimToken string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "probe.nomad.hcl")
	os.WriteFile(f, []byte(probeParent), 0o644)
	operator := &nomad.Client{API: v.API, Log: testLogger(t)}
	ctx := testContext(t, 3*time.Minute)
	if _, err := operator.Sync(ctx, []string{f}); err != nil {
		t.Fatal(err)
	}
	pols, err := nomad.LoadPolicies(jobspecs.ACL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := operator.ApplyPolicies(ctx, pols, v.ns, []string{"solstice-probe"}); err != nil {
		t.Fatal(err)
	}
	shimAPI, err := api.NewClient(&api.Config{Address: v.Addr, SecretID: shimToken, Namespace: v.ns})
	if err != nil {
		t.Fatal(err)
	}
	c := &nomad.Client{API: shimAPI, Log: testLogger(t)}
	job, err := c.Dispatch(ctx, nomad.Request{Label: "probe", Plan: []byte("{}"), Secrets: map[string]string{"S": "x"},
		Meta: nomad.Meta{Forge: "e2e", Instance: "acl", TaskID: "probe-" + v.ns, JobName: "probe"}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	tr := &nomad.Tracker{Nomad: c, Job: job, Log: testLogger(t), Timing: nomad.Timing{
		Status: time.Second, NoEvent: 5 * time.Second, EndWait: time.Minute, RetryMin: time.Second, RetryMax: 5 * time.Second}}
	st, err := tr.ReadStatus(ctx)
	if err == nil {
		st, err = tr.WaitPlaced(ctx, st)
	}
	if err == nil {
		st, err = tr.WaitEnd(ctx)
	}
	if err != nil {
		t.Fatal(err)
	}
	out := nomad.Outcome(nil, st)
	t.Logf("the probe dispatch ended after %s: %+v", time.Since(start).Round(time.Second), out)
	if out.Code != 3 || !strings.Contains(out.Problem, otherVar+"@"+v.ns) || strings.Contains(out.Problem, "solstice/secrets/"+job.SecretsKey) {
		t.Errorf("the probe: %+v, want an infrastructure failure naming only %s", out, otherVar)
	}
	alloc := v.WaitAlloc(job.ID, time.Minute, "stopped", func(a *api.Allocation) bool { return a.ClientStatus != api.AllocClientStatusPending })
	if alloc.DesiredStatus != api.AllocDesiredStatusStop {
		t.Errorf("the probe's allocation: %s, want stopped by the shim's identity", describe(alloc))
	}
	if err := c.Finish(ctx, job); err != nil {
		t.Errorf("the shim's identity cannot remove the job's secrets: %v", err)
	}
}

const runSecretWorkflow = `name: run
on: push
jobs:
  hello:
    runs-on: solstice-test
    steps:
      - run: echo "secret is ${{ secrets.RUN_SECRET }}"
`

// runWithSecret is the reproduction: solstice run --secret with
// the operator's token succeeds; with the parent job's policy removed it
// fails fast as an infrastructure failure that says what is missing.
func (v *nsView) runWithSecret(t *testing.T) {
	t.Helper()
	dir := runRepo(t, runSecretWorkflow)
	out, code, took := v.solsticeRun(t, dir)
	t.Logf("solstice run --secret (exit %d, %s):\n%s", code, took.Round(time.Second), out)
	if code != 0 || !strings.Contains(out, "secret is ***") || strings.Contains(out, aclRunSecret) {
		t.Fatalf("solstice run --secret: exit %d, want 0 with the secret masked", code)
	}
	name := nomad.PolicyName("solstice-solstice-test", v.ns)
	if _, err := v.API.ACLPolicies().Delete(name, nil); err != nil {
		t.Fatal(err)
	}
	out, code, took = v.solsticeRun(t, dir)
	t.Logf("solstice run --secret without policy %s (exit %d, %s):\n%s", name, code, took.Round(time.Second), out)
	if code != 3 || took > 90*time.Second {
		t.Errorf("without the parent policy: exit %d after %s, want 3 (infrastructure) within 90s", code, took)
	}
	for _, want := range []string{"solstice/secrets/", "solstice-solstice-test", "solstice jobs sync"} {
		if !strings.Contains(out, want) {
			t.Errorf("without the parent policy: the output lacks %q", want)
		}
	}
}

// solsticeRun runs solstice run --secret RUN_SECRET with the management
// token in the view's namespace, to its end.
func (v *nsView) solsticeRun(t *testing.T, dir string) (string, int, time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(env(t, "SOLSTICE_BIN"), "solstice"), "run", "--secret", "RUN_SECRET", "ci.yml")
	cmd.Dir = dir
	cmd.Env = append(v.env(v.Token), "RUN_SECRET="+aclRunSecret)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	return out.String(), exitCode(err), time.Since(start)
}
