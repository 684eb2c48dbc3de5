package jobspecs

import (
	"io/fs"
	"strings"
	"testing"

	"github.com/hashicorp/nomad/acl"
)

// The shipped policies parse as Nomad 1.6.3 parses them, and grant
// exactly what the README says: the parent jobs read their secrets and
// nothing else; the shims work their own jobs and Variables but may not
// register jobs, touch nodes, agents, operators or other Variables.
func TestPolicies(t *testing.T) {
	parse := func(file, ns string) *acl.ACL {
		t.Helper()
		src, err := fs.ReadFile(ACL, file)
		if err != nil {
			t.Fatal(err)
		}
		p, err := acl.Parse(strings.ReplaceAll(string(src), "${namespace}", ns))
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		a, err := acl.NewACL(false, []*acl.Policy{p})
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		return a
	}
	for _, ns := range []string{"default", "ci"} {
		shims, parent := parse("acl/shims.policy.hcl", ns), parse("acl/parent.policy.hcl", ns)
		tests := []struct {
			name string
			a    *acl.ACL
			cap  string
			want bool
		}{
			{"shims dispatch", shims, acl.NamespaceCapabilityDispatchJob, true},
			{"shims read jobs", shims, acl.NamespaceCapabilityReadJob, true},
			{"shims list jobs", shims, acl.NamespaceCapabilityListJobs, true},
			{"shims read the events file", shims, acl.NamespaceCapabilityReadFS, true},
			{"shims stop by scaling", shims, acl.NamespaceCapabilityScaleJob, true},
			{"shims register no job", shims, acl.NamespaceCapabilitySubmitJob, false},
			{"shims exec nothing", shims, acl.NamespaceCapabilityAllocExec, false},
			{"parent dispatches nothing", parent, acl.NamespaceCapabilityDispatchJob, false},
			{"parent reads no job", parent, acl.NamespaceCapabilityReadJob, false},
		}
		for _, tt := range tests {
			if got := tt.a.AllowNsOp(ns, tt.cap); got != tt.want {
				t.Errorf("%s in %s: %s = %v, want %v", tt.name, ns, tt.cap, got, tt.want)
			}
			if other := "elsewhere"; tt.a.AllowNsOp(other, tt.cap) {
				t.Errorf("%s: %s granted in namespace %s too", tt.name, tt.cap, other)
			}
		}
		vars := []struct {
			name, path, op string
			a              *acl.ACL
			want           bool
		}{
			{"parent reads its secrets", "solstice/secrets/abc", acl.VariablesCapabilityRead, parent, true},
			// Nomad's read implies list (of paths, not values).
			{"parent lists secrets' paths", "solstice/secrets/abc", acl.VariablesCapabilityList, parent, true},
			{"parent writes no secrets", "solstice/secrets/abc", acl.VariablesCapabilityWrite, parent, false},
			{"parent reads no runner credentials", "solstice/runners/forgejo/x", acl.VariablesCapabilityRead, parent, false},
			{"parent reads no other Variable", "ops/db", acl.VariablesCapabilityRead, parent, false},
			{"shims store secrets", "solstice/secrets/abc", acl.VariablesCapabilityWrite, shims, true},
			{"shims sweep secrets", "solstice/secrets/abc", acl.VariablesCapabilityDestroy, shims, true},
			{"shims list secrets", "solstice/secrets/abc", acl.VariablesCapabilityList, shims, true},
			{"shims keep runner credentials", "solstice/runners/github/o/r/x", acl.VariablesCapabilityWrite, shims, true},
			{"shims keep job records", "solstice/jobs/github/o/r/1", acl.VariablesCapabilityWrite, shims, true},
			{"shims read no other Variable", "ops/db", acl.VariablesCapabilityRead, shims, false},
			{"shims read no other job's Variable", "nomad/jobs/other", acl.VariablesCapabilityRead, shims, false},
		}
		for _, v := range vars {
			if got := v.a.AllowVariableOperation(ns, v.path, v.op, nil); got != v.want {
				t.Errorf("%s in %s: %s %s = %v, want %v", v.name, ns, v.op, v.path, got, v.want)
			}
		}
		for _, a := range []*acl.ACL{shims, parent} {
			if a.AllowNodeRead() || a.AllowAgentRead() || a.AllowOperatorRead() || a.IsManagement() {
				t.Errorf("a policy grants node, agent or operator access")
			}
		}
	}
}
