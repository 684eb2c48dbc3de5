package nomadagent

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
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
