//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/driver/isolation"
	"github.com/solstice-ci/solstice/jobspecs"
	"github.com/solstice-ci/solstice/shim/nomad"
	"github.com/solstice-ci/solstice/shim/nomadagent"
)

// The cluster's server marks a client that stopped heartbeating down, and
// its allocations lost, at most 2×clusterHeartbeatTTL+clusterHeartbeatGrace
// after its last heartbeat (Nomad's defaults, 10s and 10s, make it 30s).
// Not much lower: a client on a loaded 2-core machine must not miss its
// heartbeats by accident.
const (
	clusterHeartbeatTTL   = 3 * time.Second
	clusterHeartbeatGrace = 5 * time.Second
	// clusterLostAfter is that bound.
	clusterLostAfter = 2*clusterHeartbeatTTL + clusterHeartbeatGrace
)

// clusterGIDBase is where the clients' isolation groups start: two
// plugins on one host need groups of their own, or each would rewrite the
// other's egress chain. Not the other tests' groups (64999, egressGID).
const clusterGIDBase = 64980

// Cluster is one Nomad server and several clients on this host, each its
// own agent with its own data dir, ports, plugin config, image cache,
// isolation group and cgroup parent, with ACLs on as in production.
// Server is the server agent as a *Nomad holding the management token,
// so what takes a single agent (the forge environments, job syncs) takes
// the cluster.
type Cluster struct {
	Server  *Nomad
	Clients []*ClusterClient
	t       *testing.T
}

// ClientSpec is one client of a cluster.
type ClientSpec struct {
	Name   string
	Images []string // the catalog labels it offers; all are the test image
}

// ClusterClient is a client agent of a Cluster.
type ClusterClient struct {
	*nomadagent.Agent
	Spec   ClientSpec
	NodeID string
	gid    int
	cgroup string
}

// StartCluster starts a server and one client per spec, waits until every
// client is ready with a healthy solstice-vm driver offering its images,
// and tears it all down, by PID, when t ends.
func StartCluster(t *testing.T, specs ...ClientSpec) *Cluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	srv, err := nomadagent.Start(ctx, nomadagent.Config{
		Binary: env(t, "SOLSTICE_NOMAD"), DataDir: filepath.Join(dir, "server"),
		Role: nomadagent.ServerOnly, Name: "server", ACL: true,
		HeartbeatGrace: clusterHeartbeatGrace, MinHeartbeatTTL: clusterHeartbeatTTL,
	})
	if err != nil {
		t.Fatalf("start the nomad server: %v", err)
	}
	c := &Cluster{Server: &Nomad{Agent: srv, t: t}, t: t}
	t.Cleanup(c.cleanup)
	bootstrapACL(t, ctx, srv)
	if c.Server.API, err = srv.Client(); err != nil {
		t.Fatal(err)
	}
	for i, spec := range specs {
		c.Clients = append(c.Clients, c.startClient(ctx, dir, i, spec))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(c.Clients))
	for i, cl := range c.Clients {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = cl.waitReady(ctx, c.Server.API) }()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("nomad cluster: server pid %d at %s; %s", srv.PID(), srv.Addr, c.describe())
	return c
}

// ShimClient is an API client on a token holding exactly the shims'
// shipped policy (jobspecs/acl), which their workload identity gets in
// production: what the shims do on a cluster must need nothing more.
func (c *Cluster) ShimClient(t *testing.T) *api.Client {
	t.Helper()
	pols, err := nomad.LoadPolicies(jobspecs.ACL)
	if err != nil {
		t.Fatal(err)
	}
	rules := strings.ReplaceAll(pols.Shims, "${namespace}", api.DefaultNamespace)
	if _, err := c.Server.API.ACLPolicies().Upsert(&api.ACLPolicy{Name: "e2e-shims", Rules: rules}, nil); err != nil {
		t.Fatalf("write the shims' policy: %v", err)
	}
	tok, _, err := c.Server.API.ACLTokens().Create(&api.ACLToken{Name: "e2e-shims", Type: "client", Policies: []string{"e2e-shims"}}, nil)
	if err != nil {
		t.Fatalf("make a token with the shims' policy: %v", err)
	}
	sc, err := api.NewClient(&api.Config{Address: c.Server.Addr, SecretID: tok.SecretID})
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func (c *Cluster) startClient(ctx context.Context, dir string, i int, spec ClientSpec) *ClusterClient {
	cl := &ClusterClient{Spec: spec, gid: clusterGIDBase + i, cgroup: "/solstice-e2e-" + spec.Name}
	cacheDir := filepath.Join(dir, spec.Name+"-images")
	agent, err := nomadagent.Start(ctx, nomadagent.Config{
		Binary: env(c.t, "SOLSTICE_NOMAD"), DataDir: filepath.Join(dir, spec.Name),
		Role: nomadagent.ClientOnly, Name: spec.Name, Servers: []string{c.Server.RPCAddr()},
		Plugin:       filepath.Join(env(c.t, "SOLSTICE_BIN"), "solstice-vm"),
		PluginConfig: clientPluginConfig(c.t, cacheDir, cl.gid, spec.Images),
		CgroupParent: cl.cgroup, ACL: true,
	})
	if err != nil {
		c.t.Fatalf("start nomad client %s: %v", spec.Name, err)
	}
	agent.Token = c.Server.Token // what the test asks a client's API
	cl.Agent = agent
	return cl
}

// clientPluginConfig is a client's solstice-vm block: its own cache and
// isolation group, and the test image under each of its labels.
func clientPluginConfig(t testing.TB, cacheDir string, gid int, labels []string) string {
	img, sum := testImage(t)
	var b strings.Builder
	fmt.Fprintf(&b, "    cache_dir     = %q\n    accelerator   = \"tcg\"\n    isolation_gid = %d\n    egress_allow  = [%q]\n    warm_starts   = false\n", cacheDir, gid, giteaNet)
	for _, l := range labels {
		fmt.Fprintf(&b, "    image %q {\n      source = %q\n      sha256 = %q\n      format = \"qcow2\"\n      os     = \"linux\"\n      user   = \"solstice\"\n    }\n", l, "file://"+img, sum)
	}
	return b.String()
}

// waitReady waits until the client's node is ready and its driver offers
// every image of its spec (the image attributes placement constrains on).
func (cl *ClusterClient) waitReady(ctx context.Context, server *api.Client) error {
	node, err := cl.WaitNode(ctx, "solstice-vm")
	if err != nil {
		return fmt.Errorf("client %s: %w", cl.Spec.Name, err)
	}
	cl.NodeID = node.ID
	for {
		n, _, err := server.Nodes().Info(cl.NodeID, (&api.QueryOptions{}).WithContext(ctx))
		if err == nil && offersAll(n, cl.Spec.Images) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("client %s never offered images %v: %w", cl.Spec.Name, cl.Spec.Images, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func offersAll(n *api.Node, labels []string) bool {
	for _, l := range labels {
		if n.Attributes["driver.solstice-vm.image."+l] != "true" {
			return false
		}
	}
	return true
}

func (c *Cluster) describe() string {
	var parts []string
	for _, cl := range c.Clients {
		parts = append(parts, fmt.Sprintf("client %s (node %s, pid %d, images %s)", cl.Spec.Name, cl.NodeID[:8], cl.PID(), strings.Join(cl.Spec.Images, ",")))
	}
	return strings.Join(parts, "; ")
}

// Client is the client of that name.
func (c *Cluster) Client(name string) *ClusterClient {
	c.t.Helper()
	for _, cl := range c.Clients {
		if cl.Spec.Name == name {
			return cl
		}
	}
	c.t.Fatalf("no client %q in the cluster", name)
	return nil
}

// Crash kills the client as a power cut would: the agent, its plugin and
// every QEMU it started, at once.
func (cl *ClusterClient) Crash() {
	cl.Kill()
	for _, pid := range qemuHolding(cl.DataDir() + "/") {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

// QEMUs lists the QEMU processes running for the client's tasks.
func (cl *ClusterClient) QEMUs() []int { return qemuHolding(cl.DataDir() + "/") }

// cleanup purges every job while the clients still run (so their drivers
// stop the VMs), then stops the clients and the server, by PID.
func (c *Cluster) cleanup() {
	if c.Server.API != nil {
		if jobs, _, err := c.Server.API.Jobs().List(nil); err == nil {
			for _, j := range jobs {
				c.Server.API.Jobs().Deregister(j.ID, true, nil)
			}
			c.Server.waitNoRunningAllocs(60 * time.Second)
		}
	}
	for _, cl := range c.Clients {
		if err := cl.Stop(30 * time.Second); err != nil {
			c.t.Logf("stop nomad client %s: %v", cl.Spec.Name, err)
		}
		for _, pid := range cl.QEMUs() {
			c.t.Logf("client %s left QEMU %d running; killing it", cl.Spec.Name, pid)
			syscall.Kill(pid, syscall.SIGKILL)
		}
		if err := cl.Unmount(); err != nil {
			c.t.Logf("unmount task dirs of %s: %v", cl.Spec.Name, err)
		}
		removeCgroups(cl.cgroup)
		(&isolation.Enforcer{Tables: isolation.Tables{IPv6: isolation.IPv6Enabled()}}).Remove(context.Background(), cl.gid)
		c.logOnFailure("client "+cl.Spec.Name, cl.LogPath)
	}
	if err := c.Server.Stop(30 * time.Second); err != nil {
		c.t.Logf("stop nomad server: %v", err)
	}
	c.logOnFailure("server", c.Server.LogPath)
}

func (c *Cluster) logOnFailure(who, path string) {
	if !c.t.Failed() {
		return
	}
	if data, err := os.ReadFile(path); err == nil {
		c.t.Logf("nomad %s log (without http requests):\n%s", who, tail(withoutHTTP(string(data)), 80))
	}
}

// removeCgroups removes a client's cgroup parent from every cgroup v1
// hierarchy, deepest first; Nomad leaves the empty directories behind.
func removeCgroups(parent string) {
	roots, _ := filepath.Glob("/sys/fs/cgroup/*" + parent)
	for _, root := range roots {
		var dirs []string
		filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			os.Remove(dirs[i])
		}
	}
}
