package nomad

// ACL policies: on a cluster with ACLs on, each label parent job needs a
// policy to read its dispatches' secrets (outside a job's implicit
// Variable access), and the shims' service job one to dispatch and follow
// jobs on its workload identity. jobspecs/acl ships both; these functions
// apply them, attached to their jobs.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// ShimsJob is the runner shims' service job (jobspecs/runner-shims.nomad.hcl).
const ShimsJob = "solstice-runners"

// The policy files in jobspecs/acl.
const (
	ShimsPolicyFile  = "acl/shims.policy.hcl"
	ParentPolicyFile = "acl/parent.policy.hcl"
)

// namespacePlaceholder stands for the namespace in the shipped policies.
const namespacePlaceholder = "${namespace}"

// Policies are the shipped policy texts, with namespacePlaceholder.
type Policies struct {
	Shims, Parent string
}

// LoadPolicies reads the policies from the jobspecs tree (jobspecs.ACL).
func LoadPolicies(fsys fs.FS) (Policies, error) {
	shims, err := fs.ReadFile(fsys, ShimsPolicyFile)
	if err != nil {
		return Policies{}, fmt.Errorf("read the shims' ACL policy: %w", err)
	}
	parent, err := fs.ReadFile(fsys, ParentPolicyFile)
	if err != nil {
		return Policies{}, fmt.Errorf("read the parent jobs' ACL policy: %w", err)
	}
	return Policies{Shims: string(shims), Parent: string(parent)}, nil
}

// Applied is one ACL policy applied and the job it is attached to.
type Applied struct {
	Policy, JobID, Namespace string
}

// PolicyName names the policy attached to a job: one per job and
// namespace, since a policy name is cluster-wide.
func PolicyName(jobID, namespace string) string {
	return jobID + "-" + namespace
}

// ACLEnabled reports whether the cluster enforces ACLs.
func (c *Client) ACLEnabled(ctx context.Context) (bool, error) {
	_, _, err := c.API.ACLTokens().Self((&api.QueryOptions{}).WithContext(ctx))
	switch {
	case err == nil:
		return true, nil
	case strings.Contains(err.Error(), "ACL support disabled"):
		return false, nil
	case IsPermissionDenied(err) || strings.Contains(err.Error(), "ACL token not found"):
		return true, nil
	}
	return false, fmt.Errorf("ask Nomad whether ACLs are on: %w", err)
}

// ApplyPolicies applies the parent policy to each parent job and the
// shims' policy to ShimsJob, all in namespace. Nomad lets only
// management tokens write policies; an error says so.
func (c *Client) ApplyPolicies(ctx context.Context, p Policies, namespace string, parents []string) ([]Applied, error) {
	var done []Applied
	apply := func(jobID, rules string) error {
		a := Applied{Policy: PolicyName(jobID, namespace), JobID: jobID, Namespace: namespace}
		pol := &api.ACLPolicy{
			Name:        a.Policy,
			Description: "Solstice: what " + jobID + " may do (jobspecs/acl)",
			Rules:       strings.ReplaceAll(rules, namespacePlaceholder, namespace),
			JobACL:      &api.JobACL{Namespace: namespace, JobID: jobID},
		}
		if _, err := c.API.ACLPolicies().Upsert(pol, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
			return fmt.Errorf("apply ACL policy %s to job %s: %w", a.Policy, jobID, explainDenied(err,
				"writing ACL policies needs a management token (Nomad grants acl:write to no policy)"))
		}
		done = append(done, a)
		return nil
	}
	for _, id := range parents {
		if err := apply(id, p.Parent); err != nil {
			return done, err
		}
	}
	return done, apply(ShimsJob, p.Shims)
}

// IsPermissionDenied reports whether Nomad refused a request for the
// token's lack of a capability.
func IsPermissionDenied(err error) bool {
	var ue api.UnexpectedResponseError
	if errors.As(err, &ue) && ue.StatusCode() == 403 {
		return true
	}
	return err != nil && strings.Contains(err.Error(), "Permission denied")
}

// identityRefused reports whether Nomad refused a workload identity on
// an endpoint that takes only ACL tokens: Nomad 1.6.3 looks the token up
// as an ACL secret there (Job.Register, the jobspec parser, the ACL
// endpoints) and answers with a lookup error, not a 403.
func identityRefused(err error) bool {
	return err != nil && (strings.Contains(err.Error(), "ACL token is invalid") ||
		strings.Contains(err.Error(), "UUID must be 36 characters"))
}

// explainDenied adds what was missing to a refusal; other errors pass.
func explainDenied(err error, missing string) error {
	switch {
	case IsPermissionDenied(err):
		return fmt.Errorf("permission denied: %s: %w", missing, err)
	case identityRefused(err):
		return fmt.Errorf("permission denied: %s, and Nomad takes only an ACL token here, not a workload identity: %w", missing, err)
	}
	return err
}

// missingHint says what a dispatch whose template waits for data (its
// problem names it) lacks: for its secrets, the parent job's policy.
func missingHint(problem, parent string) string {
	if strings.Contains(problem, "("+contract.SecretsPrefix) || strings.Contains(problem, " "+contract.SecretsPrefix) {
		return fmt.Sprintf("the parent job %s needs an ACL policy granting read on Variables %s* (`solstice jobs sync` applies jobspecs/acl/parent.policy.hcl), or the Variable was removed", parent, contract.SecretsPrefix)
	}
	return fmt.Sprintf("the parent job %s's workload identity may not read it (its policy grants only Variables %s*), or it does not exist", parent, contract.SecretsPrefix)
}
