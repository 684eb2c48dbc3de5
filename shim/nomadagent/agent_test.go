package nomadagent

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestMountsUnder(t *testing.T) {
	info := `22 1 8:1 / / rw - ext4 /dev/vda rw
100 22 0:50 / /tmp/n/alloc/a1/t/secrets rw - tmpfs tmpfs rw
101 22 0:51 / /tmp/n/alloc/a1/t/private rw - tmpfs tmpfs rw
102 22 0:52 / /tmp/nomad-other/x rw - tmpfs tmpfs rw
`
	got := mountsUnder(info, "/tmp/n")
	want := []string{"/tmp/n/alloc/a1/t/private", "/tmp/n/alloc/a1/t/secrets"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mountsUnder = %v, want %v (deepest first, siblings of /tmp/n excluded)", got, want)
	}
}

func TestConfigConsulBlock(t *testing.T) {
	tests := []struct {
		name   string
		consul string
		want   string // empty: no consul block at all
	}{
		{"none", "", ""},
		{"local agent", "127.0.0.1:18500", "consul {\n  address = \"127.0.0.1:18500\"\n}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &Agent{cfg: Config{DataDir: "/tmp/n", Consul: tt.consul}}
			path := filepath.Join(t.TempDir(), "agent.hcl")
			if err := a.writeConfig(path); err != nil {
				t.Fatal(err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			hcl := string(data)
			if tt.want == "" && strings.Contains(hcl, "consul") {
				t.Fatalf("a consul block without an address:\n%s", hcl)
			}
			if !strings.Contains(hcl, tt.want) {
				t.Fatalf("the config lacks %q:\n%s", tt.want, hcl)
			}
		})
	}
}

func TestConfigRoles(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		want, not []string
	}{
		{"single node", Config{}, []string{`name       = "solstice-local"`, "server {", "client {", `servers = ["127.0.0.1:4647"]`}, []string{"heartbeat_grace"}},
		{"server", Config{Role: ServerOnly, Name: "srv", HeartbeatGrace: 5 * time.Second, MinHeartbeatTTL: 3 * time.Second},
			[]string{`name       = "srv"`, "server {", `heartbeat_grace   = "5s"`, `min_heartbeat_ttl = "3s"`}, []string{"client {"}},
		{"client", Config{Role: ClientOnly, Name: "alpha", Servers: []string{"127.0.0.1:9000", "127.0.0.1:9001"}, CgroupParent: "/solstice-alpha"},
			[]string{`name       = "alpha"`, "client {", `servers = ["127.0.0.1:9000", "127.0.0.1:9001"]`, `cgroup_parent = "/solstice-alpha"`}, []string{"server {", "network_interface"}},
		{"loopback ports", Config{NetworkInterface: "lo"}, []string{`network_interface = "lo"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.DataDir = "/tmp/n"
			a := &Agent{cfg: tt.cfg, ports: ports{HTTP: 4646, RPC: 4647, Serf: 4648}}
			path := filepath.Join(t.TempDir(), "agent.hcl")
			if err := a.writeConfig(path); err != nil {
				t.Fatal(err)
			}
			data, _ := os.ReadFile(path)
			for _, w := range tt.want {
				if !strings.Contains(string(data), w) {
					t.Errorf("the config lacks %q:\n%s", w, data)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(string(data), n) {
					t.Errorf("the config has %q:\n%s", n, data)
				}
			}
		})
	}
}
