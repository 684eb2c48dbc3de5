package localrun

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLocalPluginConfig: the local agent's driver offers debug sessions on
// the loopback address, with -debug-ssh-max as their limit when given.
func TestLocalPluginConfig(t *testing.T) {
	img := filepath.Join(t.TempDir(), "solstice-test.qcow2")
	if err := os.WriteFile(img+".sha256", []byte(strings.Repeat("ab", 32)+"  solstice-test.qcow2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		max       time.Duration
		want, not []string
	}{
		{"default limit", 0, []string{`debug_ssh_host = "127.0.0.1"`}, []string{"debug_ssh_max"}},
		{"shortened", 90 * time.Second, []string{`debug_ssh_host = "127.0.0.1"`, `debug_ssh_max = "1m30s"`}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf, err := Local{Image: img, CacheDir: "/c", DebugSSHMax: tt.max}.pluginConfig()
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(conf, w) {
					t.Errorf("the plugin config lacks %q:\n%s", w, conf)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(conf, n) {
					t.Errorf("the plugin config has %q:\n%s", n, conf)
				}
			}
		})
	}
}
