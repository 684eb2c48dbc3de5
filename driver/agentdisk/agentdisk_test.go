package agentdisk

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func writeAgent(t *testing.T, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "solstice-guest-linux-amd64")
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestEnsureBuildsOneSharedImage(t *testing.T) {
	agent := bytes.Repeat([]byte("agent!"), BlockSize/3) // two blocks, the last one partial
	dir := t.TempDir()
	d, err := Ensure(dir, writeAgent(t, agent))
	if err != nil {
		t.Fatal(err)
	}
	img, err := os.ReadFile(d.Path)
	if err != nil {
		t.Fatal(err)
	}
	if d.Blocks != 2 || len(img) != 3*BlockSize {
		t.Fatalf("image of %d bytes in %d blocks, want %d bytes, 2 blocks", len(img), d.Blocks, 3*BlockSize)
	}
	if first, _, _ := strings.Cut(string(img[:512]), "\n"); first != d.Header || !strings.HasPrefix(first, "solstice-agent-disk 1 ") {
		t.Errorf("first line %q, want the header %q", first, d.Header)
	}
	if !bytes.Equal(img[BlockSize:BlockSize+len(agent)], agent) || bytes.Count(img[BlockSize+len(agent):], []byte{0}) != 3*BlockSize-BlockSize-len(agent) {
		t.Error("the agent is not in the blocks after the header, zero-padded")
	}
	if st, _ := os.Stat(d.Path); st.Mode().Perm() != 0o444 {
		t.Errorf("image mode %v, want read-only 0444", st.Mode().Perm())
	}

	// The same agent again: the same image, not rewritten.
	before, _ := os.Stat(d.Path)
	again, err := Ensure(dir, writeAgent(t, agent))
	if err != nil || again != d {
		t.Fatalf("Ensure again = %+v, %v; want %+v", again, err, d)
	}
	if after, _ := os.Stat(d.Path); !os.SameFile(before, after) {
		t.Error("the image was rebuilt for the same agent")
	}
	// Another agent build: another image beside it.
	other, err := Ensure(dir, writeAgent(t, []byte("another agent")))
	if err != nil || other.Path == d.Path || other.Header == d.Header || other.Blocks != 1 {
		t.Fatalf("another agent: %+v, %v", other, err)
	}
}

func TestEnsureRefusesBadAgents(t *testing.T) {
	for name, p := range map[string]string{
		"missing": filepath.Join(t.TempDir(), "nope"),
		"empty":   writeAgent(t, nil),
	} {
		if _, err := Ensure(t.TempDir(), p); err == nil {
			t.Errorf("%s agent: no error", name)
		}
	}
}

// TestCopyScript runs the guest's script with the host's sh and dd over
// files standing in for the guest's disks: it copies the agent from the
// disk with the header, and none from a disk with another agent's.
func TestCopyScript(t *testing.T) {
	agent := bytes.Repeat([]byte{0x7f, 'E', 'L', 'F', 1}, 30000)
	d, err := Ensure(t.TempDir(), writeAgent(t, agent))
	if err != nil {
		t.Fatal(err)
	}
	older, err := Ensure(t.TempDir(), writeAgent(t, []byte("an older agent")))
	if err != nil {
		t.Fatal(err)
	}
	boot := filepath.Join(t.TempDir(), "vda")
	if err := os.WriteFile(boot, bytes.Repeat([]byte("root fs\n"), 1000), 0o600); err != nil {
		t.Fatal(err)
	}
	devs := []string{boot, filepath.Join(t.TempDir(), "vd[x-z]"), older.Path, d.Path}

	out, code := runScript(t, d.copyScript(devs))
	if code != 0 {
		t.Fatalf("copy script exited %d", code)
	}
	if len(out) != d.Blocks*BlockSize || !bytes.Equal(out[:len(agent)], agent) || len(bytes.Trim(out[len(agent):], "\x00")) != 0 {
		t.Errorf("copied %d bytes, want the agent zero-padded to %d", len(out), d.Blocks*BlockSize)
	}

	out, code = runScript(t, d.copyScript(devs[:3]))
	if code != NotFoundExit || len(out) != 0 {
		t.Errorf("without the agent's disk: exit %d and %d bytes, want exit 3 and none", code, len(out))
	}
}

func runScript(t *testing.T, script string) ([]byte, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "sh", "-c", script).Output()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out, ee.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return out, 0
}
