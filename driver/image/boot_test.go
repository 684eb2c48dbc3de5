package image

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// expander plays qemu-img convert: it writes out (payload unless told
// otherwise) or reports that there is nothing to expand, or fails.
type expander struct {
	calls   atomic.Int32
	nothing bool   // the image has no compressed clusters
	fail    error  // qemu-img failed
	out     []byte // what it writes; payload when nil
}

func (e *expander) expand(_ context.Context, src, dst, format string) (bool, error) {
	e.calls.Add(1)
	if format != "qcow2" || !strings.HasSuffix(src, ".qcow2") {
		return false, errors.New("asked to expand " + src + " as " + format)
	}
	switch {
	case e.fail != nil:
		return false, e.fail
	case e.nothing:
		return false, nil
	}
	out := e.out
	if out == nil {
		out = payload
	}
	return true, os.WriteFile(dst, out, 0o644)
}

func localSource(t *testing.T) Source {
	p := filepath.Join(t.TempDir(), "img")
	if err := os.WriteFile(p, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	return Source{Label: "test", URL: "file://" + p, SHA256: sum(payload), Format: "qcow2"}
}

// Tasks boot from the boot copy: an expanded file of its own, or a link
// to the cached image when there is nothing to expand. When the copy
// cannot be made, they boot from the cached image, and the copy is not
// tried again at every start. Concurrent tasks share one expansion, and
// the cached image itself stays as fetched.
func TestEnsureMakesTheBootCopy(t *testing.T) {
	for _, tc := range []struct {
		name         string
		e            *expander
		wantBoot     bool // the task boots from .boot.qcow2
		wantLink     bool // which is the cached image itself
		wantAttempts int32
	}{
		{name: "compressed", e: &expander{}, wantBoot: true, wantAttempts: 1},
		{name: "nothing to expand", e: &expander{nothing: true}, wantBoot: true, wantLink: true, wantAttempts: 1},
		{name: "qemu-img fails", e: &expander{fail: errors.New("No space left on device")}, wantAttempts: 1},
		{name: "the copy is corrupt", e: &expander{out: []byte("garbage")}, wantAttempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache(t)
			c.Expand = tc.e.expand
			src := localSource(t)
			var wg sync.WaitGroup
			paths := make([]string, 3)
			for i := range paths {
				wg.Add(1)
				go func() {
					defer wg.Done()
					p, err := c.Ensure(ctx(t), src)
					if err != nil {
						t.Error(err)
					}
					paths[i] = p
				}()
			}
			wg.Wait()
			again, err := c.Ensure(ctx(t), src)
			if err != nil {
				t.Fatal(err)
			}
			final := filepath.Join(c.Dir, sum(payload)+".qcow2")
			boot := filepath.Join(c.Dir, sum(payload)+".boot.qcow2")
			want := final
			if tc.wantBoot {
				want = boot
			}
			for _, p := range append(paths, again) {
				if p != want {
					t.Fatalf("tasks boot from %v and then %s, want %s", paths, again, want)
				}
			}
			if n := tc.e.calls.Load(); n != tc.wantAttempts {
				t.Errorf("the boot copy was attempted %d times, want %d", n, tc.wantAttempts)
			}
			if err := verifyPrefix(ctx(t), final, "qcow2"); err != nil {
				t.Errorf("the cached image changed: %v", err)
			}
			if cached, _ := c.Cached(src); cached != want {
				t.Errorf("Cached = %s, want %s", cached, want)
			}
			if tmp, _ := filepath.Glob(filepath.Join(c.Dir, "*.tmp")); len(tmp) > 0 {
				t.Errorf("left behind: %v", tmp)
			}
			if !tc.wantBoot {
				if _, err := os.Stat(boot); !os.IsNotExist(err) {
					t.Fatalf("a failed boot copy is in the cache: %v", err)
				}
				return
			}
			st, err := os.Stat(boot)
			if err != nil || st.Mode().Perm() != 0o444 {
				t.Fatalf("boot copy %v, %v; want it read-only", st, err)
			}
			if got := separate(final, boot); got == tc.wantLink {
				t.Errorf("the boot copy is a file of its own: %v, want %v", got, !tc.wantLink)
			}
		})
	}
}

// An image cached before boot copies existed gets its copy at the next
// task start, without a second fetch.
func TestEnsureExpandsAnImageCachedEarlier(t *testing.T) {
	c := newCache(t)
	src := localSource(t)
	first, err := c.Ensure(ctx(t), src)
	if err != nil {
		t.Fatal(err)
	}
	var e expander
	later := &Cache{Dir: c.Dir, Log: hclog.NewNullLogger(), Verify: verifyPrefix, Expand: e.expand}
	got, err := later.Ensure(ctx(t), src)
	if err != nil {
		t.Fatal(err)
	}
	if got == first || !strings.HasSuffix(got, ".boot.qcow2") || e.calls.Load() != 1 {
		t.Fatalf("boots from %s (was %s) after %d expansions; want a boot copy made once", got, first, e.calls.Load())
	}
}

// Checking an image checks its boot copy too: a corrupt copy is removed
// (the image stays, and the next task makes the copy again); a corrupt
// image takes its copy with it.
func TestCheckCoversTheBootCopy(t *testing.T) {
	for _, tc := range []struct {
		name                 string
		corruptImage         bool
		corruptCopy          bool
		wantImage, wantCopy  bool
		wantProblem, removed bool
	}{
		{name: "both intact", wantImage: true, wantCopy: true},
		{name: "corrupt copy", corruptCopy: true, wantImage: true, wantProblem: true},
		{name: "corrupt image", corruptImage: true, removed: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var e expander
			c := newCache(t)
			c.Expand = e.expand
			src := localSource(t)
			boot, err := c.Ensure(ctx(t), src)
			if err != nil {
				t.Fatal(err)
			}
			final := filepath.Join(c.Dir, sum(payload)+".qcow2")
			for path, bad := range map[string]bool{final: tc.corruptImage, boot: tc.corruptCopy} {
				if bad {
					os.Chmod(path, 0o644)
					os.WriteFile(path, []byte("flipped bits"), 0o644)
				}
			}
			k, err := c.Check(ctx(t), src)
			if err != nil {
				t.Fatal(err)
			}
			if k.Removed != tc.removed || (k.BootProblem != "") != tc.wantProblem {
				t.Fatalf("Check = %+v", k)
			}
			if !tc.removed && k.BootCopy != boot {
				t.Errorf("Check names the boot copy %q, want %q", k.BootCopy, boot)
			}
			if exists(final) != tc.wantImage || exists(boot) != tc.wantCopy {
				t.Fatalf("after Check: image there %v, copy there %v; want %v, %v", exists(final), exists(boot), tc.wantImage, tc.wantCopy)
			}
			if tc.corruptCopy {
				if again, err := c.Ensure(ctx(t), src); err != nil || again != boot || e.calls.Load() != 2 {
					t.Fatalf("after a corrupt copy was removed: %s, %v after %d expansions", again, err, e.calls.Load())
				}
			}
		})
	}
}
