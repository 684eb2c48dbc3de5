package template

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func testKey() Key {
	return Key{Image: "debian", ImageIdentity: "abc", MemoryMB: 512, CPUs: 1, DiskSize: 1 << 30,
		Accel: "tcg", QEMUVersion: "7.2", PluginVersion: "1.0", AgentVersion: "a1", SeedFormat: "nocloud", User: "solstice"}
}

func TestKeyIDChangesWithEveryField(t *testing.T) {
	base := testKey()
	for _, tc := range []struct {
		name   string
		change func(*Key)
	}{
		{"image checksum", func(k *Key) { k.ImageIdentity = "def" }},
		{"memory", func(k *Key) { k.MemoryMB = 2048 }},
		{"cpus", func(k *Key) { k.CPUs = 2 }},
		{"disk size", func(k *Key) { k.DiskSize = 2 << 30 }},
		{"accelerator", func(k *Key) { k.Accel = "kvm" }},
		{"qemu version", func(k *Key) { k.QEMUVersion = "8.2" }},
		{"plugin version", func(k *Key) { k.PluginVersion = "1.1" }},
		{"agent version", func(k *Key) { k.AgentVersion = "a2" }},
		{"seed format", func(k *Key) { k.SeedFormat = "nocloud-fat" }},
		{"user", func(k *Key) { k.User = "root" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := base
			tc.change(&k)
			if k.ID() == base.ID() {
				t.Fatalf("a changed %s kept template id %s", tc.name, k.ID())
			}
		})
	}
	if testKey().ID() != base.ID() {
		t.Fatal("equal keys got different ids")
	}
}

func TestKeyValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Key)
		ok     bool
	}{
		{"complete", func(*Key) {}, true},
		{"no image identity", func(k *Key) { k.ImageIdentity = "" }, false},
		{"tiny memory", func(k *Key) { k.MemoryMB = 16 }, false},
		{"no cpus", func(k *Key) { k.CPUs = 0 }, false},
		{"no plugin version", func(k *Key) { k.PluginVersion = "" }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k := testKey()
			tc.change(&k)
			if err := k.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// build makes a complete template for k in s.
func build(t *testing.T, s *Store, k Key) *Template {
	t.Helper()
	b, err := s.Begin(k)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{DiskFile, RAMFile, StateFile, LoginKeyFile} {
		if err := os.WriteFile(b.Path(f), []byte(f+" contents"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	tpl, err := b.Commit([]byte("hostkey"))
	if err != nil {
		t.Fatal(err)
	}
	return tpl
}

func TestStoreLifecycle(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	k := testKey()
	if _, _, err := s.Acquire(k); !errors.Is(err, ErrMissing) {
		t.Fatalf("Acquire before any build = %v, want ErrMissing", err)
	}
	b, err := s.Begin(k)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Begin(k); !errors.Is(err, ErrBuilding) {
		t.Fatalf("second Begin = %v, want ErrBuilding", err)
	}
	if _, _, err := s.Acquire(k); !errors.Is(err, ErrBuilding) {
		t.Fatalf("Acquire during a build = %v, want ErrBuilding", err)
	}
	b.Abort()
	tpl := build(t, s, k)
	got, release, err := s.Acquire(k)
	if err != nil {
		t.Fatal(err)
	}
	release()
	if got.Dir != tpl.Dir || string(got.Manifest.HostKey) != "hostkey" {
		t.Fatalf("Acquire = %+v, want the committed template %+v", got, tpl)
	}
	// Another key (a new image checksum) does not see it.
	other := k
	other.ImageIdentity = "new"
	if _, _, err := s.Acquire(other); !errors.Is(err, ErrMissing) {
		t.Fatalf("Acquire for a changed key = %v, want ErrMissing", err)
	}
}

func TestStoreRefusesChangedFiles(t *testing.T) {
	for _, tc := range []struct {
		name string
		file string
	}{
		{"ram written", RAMFile},
		{"state written", StateFile},
		{"disk written", DiskFile},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			tpl := build(t, s, testKey())
			f, err := os.OpenFile(tpl.Path(tc.file), os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			f.WriteAt([]byte("X"), 0) // same size, new content
			f.Close()
			_, _, err = s.Acquire(testKey())
			if err == nil || !strings.Contains(err.Error(), "broken") {
				t.Fatalf("Acquire after %s = %v, want a broken template", tc.name, err)
			}
			// A rebuild replaces it.
			build(t, s, testKey())
			if _, release, err := s.Acquire(testKey()); err != nil {
				t.Fatalf("Acquire after the rebuild: %v", err)
			} else {
				release()
			}
		})
	}
}

func TestOpenSurvivesRestartAndDropsUnfinishedBuilds(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	build(t, s, testKey())
	half, err := s.Begin(Key{Image: "x", ImageIdentity: "y", MemoryMB: 128, CPUs: 1, Accel: "tcg", PluginVersion: "1"})
	if err != nil {
		t.Fatal(err)
	}
	// A new plugin process opens the same dir.
	s2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(half.Dir); !os.IsNotExist(err) {
		t.Fatalf("unfinished build %s survived Open: %v", half.Dir, err)
	}
	if _, release, err := s2.Acquire(testKey()); err != nil {
		t.Fatalf("template did not survive a restart: %v", err)
	} else {
		release()
	}
	if err := s2.Prune(map[string]bool{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, testKey().ID())); !os.IsNotExist(err) {
		t.Fatalf("Prune kept an unused template: %v", err)
	}
}
