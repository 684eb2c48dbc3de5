package image

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/go-hclog"
)

// TestCheck: a cached image that still hashes to its checksum passes; one
// changed on disk is reported with both checksums and removed, so the next
// task fetches it again; an image never fetched is not cached.
func TestCheck(t *testing.T) {
	for _, tc := range []struct {
		name        string
		compression string
		corrupt     bool
		fetch       bool
		wantCached  bool
		wantOK      bool
		wantSums    bool
	}{
		{name: "intact", compression: "none", fetch: true, wantCached: true, wantOK: true, wantSums: true},
		{name: "corrupt", compression: "none", fetch: true, corrupt: true, wantCached: true, wantSums: true},
		{name: "not cached", compression: "none"},
		{name: "compressed intact", compression: "gzip", fetch: true, wantCached: true, wantOK: true},
		{name: "compressed corrupt", compression: "gzip", fetch: true, corrupt: true, wantCached: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := compress(t, tc.compression, payload)
			srcPath := filepath.Join(t.TempDir(), "img")
			if err := os.WriteFile(srcPath, raw, 0o644); err != nil {
				t.Fatal(err)
			}
			c := &Cache{Dir: t.TempDir(), Log: hclog.NewNullLogger(), Verify: verifyPrefix}
			src := Source{Label: "test", URL: "file://" + srcPath, SHA256: sum(raw), Format: "qcow2", Compression: tc.compression}
			ctx := context.Background()
			if tc.fetch {
				path, err := c.Ensure(ctx, src)
				if err != nil {
					t.Fatal(err)
				}
				if tc.corrupt {
					os.Chmod(path, 0o644)
					if err := os.WriteFile(path, []byte("flipped bits"), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			k, err := c.Check(ctx, src)
			if err != nil {
				t.Fatal(err)
			}
			if k.Cached != tc.wantCached || k.OK() != tc.wantOK || k.Removed != (tc.corrupt) {
				t.Fatalf("Check = %+v, want cached %v ok %v removed %v", k, tc.wantCached, tc.wantOK, tc.corrupt)
			}
			if tc.wantSums && (k.Want != sum(raw) || k.Got == "" || (k.Got == k.Want) == tc.corrupt) {
				t.Fatalf("checksums: want %q got %q (image sum %s)", k.Want, k.Got, sum(raw))
			}
			if tc.corrupt && tc.compression != "none" && k.Problem == "" {
				t.Fatalf("a compressed image's failure has no reason: %+v", k)
			}
			if _, err := os.Stat(k.Path); (err == nil) != (tc.wantCached && !tc.corrupt) {
				t.Fatalf("after Check, %s exists: %v", k.Path, err == nil)
			}
			if _, ok := c.Cached(src); ok == tc.corrupt && tc.corrupt {
				t.Fatal("a removed image is still reported cached")
			}
		})
	}
}
