//go:build e2e

package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestImagePullVerify is solstice image pull and verify on one agent with
// an empty image cache and the test image from a file:// source: pull
// fills the client's cache (a job there then downloads nothing), verify
// says ok; a cached file changed on disk makes verify report the mismatch,
// fail naming the node, and remove it.
func TestImagePullVerify(t *testing.T) {
	img, sum := testImage(t)
	cache := t.TempDir()
	n := StartNomad(t, WithPlugin(emptyCachePlugin(cache, "file://"+img, sum)))
	node, err := n.WaitNode(testContext(t, time.Minute), "solstice-vm")
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(cache, "bases", sum+".qcow2")
	imageCLI := func(args ...string) (string, string, int) {
		t.Helper()
		start := time.Now()
		out, errOut, code := cli(t, nil, append([]string{"image", args[0], "-address", n.Addr}, args[1:]...)...)
		t.Logf("solstice image %s (%s, exit %d):\n%s%s", strings.Join(args, " "), time.Since(start).Round(time.Millisecond), code, out, errOut)
		return out, errOut, code
	}

	// An alias names the image as its label does.
	out, _, code := imageCLI("pull", "debian-test")
	if code != 0 || !strings.Contains(out, node.Name+": cached: image solstice-test is cached at "+cached) {
		t.Fatalf("image pull: exit %d, want 0 and the cached path %s", code, cached)
	}
	if _, err := os.Stat(cached); err != nil {
		t.Fatalf("after image pull the client's cache lacks the image: %v", err)
	}
	if jobs, _, _ := n.API.Jobs().List(nil); len(jobs) != 0 {
		t.Fatalf("image pull left %d jobs behind (%s …)", len(jobs), jobs[0].ID)
	}
	// The driver fingerprints when an image enters its cache; Nomad
	// passes the node's new attributes on within seconds.
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(2 * time.Second) {
		out, _, code = imageCLI("pull", "solstice-test")
		if code == 0 && strings.Contains(out, node.Name+": already cached") {
			break
		}
		if code != 0 || time.Now().After(deadline) {
			t.Fatalf("a second image pull: exit %d, want 0 and already cached (the driver's fingerprint says so)", code)
		}
	}
	t.Run("a job downloads nothing", func(t *testing.T) { jobAfterPull(t, n) })

	out, _, code = imageCLI("verify", "-node", node.Name, "solstice-test")
	if code != 0 || !strings.Contains(out, node.Name+": ok: image solstice-test at "+cached+" matches sha256 "+sum) {
		t.Fatalf("image verify: exit %d, want 0 and ok", code)
	}

	corrupt(t, cached)
	out, errOut, code := imageCLI("verify", "solstice-test")
	if code != 1 || !strings.Contains(out, node.Name+": failed: ") || !strings.Contains(out, "the cached "+cached+" has sha256 ") ||
		!strings.Contains(out, "the catalog wants "+sum) || !strings.Contains(errOut, "solstice image verify: solstice-test failed on 1 of 1 clients: "+node.Name) {
		t.Fatalf("image verify of a corrupt image: exit %d, want 1, the mismatch and the node named on stderr", code)
	}
	if _, err := os.Stat(cached); !os.IsNotExist(err) {
		t.Fatalf("the corrupt image is still in the cache (%v)", err)
	}
	out, _, code = imageCLI("verify", "solstice-test")
	if code != 0 || !strings.Contains(out, node.Name+": not cached: ") {
		t.Fatalf("image verify after the removal: exit %d, want 0 and not cached", code)
	}
}

// jobAfterPull runs a workflow on the pulled image: no download events.
func jobAfterPull(t *testing.T, n *Nomad) {
	syncLabel(t, n, nil)
	events := watchDownloadEvents(t, n)
	dir := runRepo(t, "on: push\njobs:\n  hello:\n    runs-on: solstice-test\n    steps:\n      - run: echo \"pulled $((6*7))\"\n")
	start := time.Now()
	cmd, out := solsticeRun(t, n, dir, "ci.yml")
	err := waitCmd(cmd, 6*time.Minute)
	text := out.String()
	if err != nil || !strings.Contains(text, "pulled 42") {
		t.Fatalf("solstice run: %v\n%s", err, text)
	}
	t.Logf("solstice run took %s", time.Since(start).Round(time.Second))
	if done := events(); len(done) > 0 || strings.Contains(text, "downloading image") {
		t.Fatalf("the job after image pull downloaded the image (events %v):\n%s", done, text)
	}
}

// corrupt changes one byte in the middle of a cached (read-only) image.
func corrupt(t *testing.T, path string) {
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, st.Size()/2); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, st.Size()/2); err != nil {
		t.Fatal(err)
	}
}
