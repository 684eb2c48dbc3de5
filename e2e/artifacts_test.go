//go:build e2e

package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// artifactWorkflow uploads a directory, a manifest of its checksums and a
// 200 MiB file in one job, and checks the directory byte for byte after
// downloading it in a dependent job. The guest agent's peak RSS during
// the big upload is printed for the test to check.
const artifactWorkflow = `name: artifacts
on: push
jobs:
  make:
    runs-on: solstice-test
    steps:
      - name: Make files
        run: |
          mkdir -p out/bin out/doc/deep
          head -c 3000000 /dev/urandom > out/bin/tool
          echo "hello artifacts" > out/doc/deep/readme.txt
          printf 'x%.0s' $(seq 1 5000) > out/doc/xs.txt
          (find out -type f | sort | xargs sha256sum) > sums.txt
          sed 's/^/manifest: /' sums.txt
          head -c 209715200 /dev/urandom > big.bin
          echo "hwm before: $(grep VmHWM /proc/$PPID/status)"
      - id: up
        uses: actions/upload-artifact@v4
        with:
          name: build
          path: out/
      - uses: actions/upload-artifact@v4
        with:
          name: manifest
          path: sums.txt
      - uses: actions/upload-artifact@v4
        with:
          name: big
          path: big.bin
          compression-level: 0
      - name: Agent memory
        run: |
          echo "agent: $(cat /proc/$PPID/comm) $(grep VmHWM /proc/$PPID/status)"
          echo "digest=${{ steps.up.outputs.artifact-digest }} id=${{ steps.up.outputs.artifact-id }}"
  use:
    needs: make
    runs-on: solstice-test
    steps:
      - uses: actions/download-artifact@v4
        with:
          name: build
          path: out
      - uses: actions/download-artifact@v4
        with:
          name: manifest
      - name: Compare
        run: sha256sum -c sums.txt && echo "all identical"
`

// TestGiteaArtifacts is issue #19's artifact round trip on real Gitea:
// upload in one job, download in a dependent job, byte-identical; the
// artifact in Gitea's API with the right size; the zip from Gitea's UI
// route matching; a 200 MiB upload with bounded agent memory.
func TestGiteaArtifacts(t *testing.T) {
	start := time.Now()
	f := startForgeVM(t)
	f.g.PushFile(f.repo, ".gitea/workflows/artifacts.yml", artifactWorkflow)
	jobs := f.g.WaitJobsDone(f.repo, 2, 25*time.Minute)
	makeLog := f.g.JobLog(f.repo, f.job(t, jobs, "make").ID)
	useLog := f.g.JobLog(f.repo, f.job(t, jobs, "use").ID)
	t.Logf("make:\n%s\nuse:\n%s", makeLog, useLog)
	for _, j := range jobs {
		if j.Conclusion != "success" {
			t.Fatalf("%s: %s", j.Name, j.Conclusion)
		}
	}
	if !strings.Contains(useLog, "all identical") {
		t.Error("the dependent job did not confirm the checksums")
	}
	checkAgentMemory(t, makeLog)
	arts := f.giteaArtifacts(t)
	build, ok := arts["build"]
	if !ok || arts["big"].Size < 200<<20 {
		t.Fatalf("Gitea lists %+v", arts)
	}
	if want := loggedInt(t, makeLog, `Artifact build has been successfully uploaded! Final size is (\d+) bytes`); build.Size != want {
		t.Errorf("Gitea says build is %d bytes, the upload made %d", build.Size, want)
	}
	zipData := f.uiDownload(t, build.RunID, "build")
	sum := sha256.Sum256(zipData)
	if digest := loggedString(t, makeLog, `digest=([0-9a-f]{64})`); hex.EncodeToString(sum[:]) != digest {
		t.Errorf("zip from the UI route has sha256 %x, the upload's digest is %s", sum, digest)
	}
	checkZipAgainstManifest(t, zipData, makeLog)
	f.assertCleanedUp(t)
	t.Logf("TestGiteaArtifacts took %s", time.Since(start).Round(time.Second))
}

type giteaArtifact struct {
	ID    int64
	Size  int64
	RunID int64
}

// giteaArtifacts lists the repository's artifacts through Gitea's API.
func (f *forgeVM) giteaArtifacts(t *testing.T) map[string]giteaArtifact {
	var out struct {
		Artifacts []struct {
			ID          int64  `json:"id"`
			Name        string `json:"name"`
			Size        int64  `json:"size_in_bytes"`
			WorkflowRun struct {
				ID int64 `json:"id"`
			} `json:"workflow_run"`
		} `json:"artifacts"`
	}
	f.g.API("GET", fmt.Sprintf("repos/%s/%s/actions/artifacts", f.g.User, f.repo), nil, 200, &out)
	m := map[string]giteaArtifact{}
	for _, a := range out.Artifacts {
		m[a.Name] = giteaArtifact{ID: a.ID, Size: a.Size, RunID: a.WorkflowRun.ID}
	}
	return m
}

// uiDownload fetches an artifact through the web UI's route, as the
// download link on the run page does (the repository is public).
func (f *forgeVM) uiDownload(t *testing.T, run int64, name string) []byte {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	u := fmt.Sprintf("%s%s/%s/actions/runs/%d/artifacts/%s", f.g.URL, f.g.User, f.repo, run, name)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d %v", u, resp.StatusCode, err)
	}
	return data
}

// checkZipAgainstManifest compares every zip entry with the sha256sum
// lines the job printed ("manifest: SUM  out/PATH").
func checkZipAgainstManifest(t *testing.T, data []byte, log string) {
	want := map[string]string{}
	for _, m := range regexp.MustCompile(`manifest: ([0-9a-f]{64})  out/(\S+)`).FindAllStringSubmatch(log, -1) {
		want[m[2]] = m[1]
	}
	zr, err := zip.NewReader(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("the UI's zip: %v", err)
	}
	got := map[string]string{}
	for _, zf := range zr.File {
		rc, err := zf.Open()
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		_, err = io.Copy(h, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("%s: %v", zf.Name, err)
		}
		got[zf.Name] = hex.EncodeToString(h.Sum(nil))
	}
	if len(want) != 3 || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("zip entries %v, manifest %v", got, want)
	}
}

// checkAgentMemory reads the agent's peak RSS after the uploads from the
// log and requires it far below the 200 MiB artifact.
func checkAgentMemory(t *testing.T, log string) {
	switch comm := loggedString(t, log, `agent: (\S+) VmHWM`); comm {
	case "sh", "bash", "dash":
		t.Errorf("the memory probe read %s, not the agent", comm)
	}
	kb := loggedInt(t, log, `agent: \S+ VmHWM:\s+(\d+) kB`)
	t.Logf("guest agent peak RSS after a 200 MiB upload: %d KiB (before: %s)", kb, loggedString(t, log, `hwm before: VmHWM:\s+(\d+ kB)`))
	if kb > 96<<10 {
		t.Errorf("the agent peaked at %d KiB for a 200 MiB artifact", kb)
	}
}

func loggedString(t *testing.T, log, pattern string) string {
	t.Helper()
	m := regexp.MustCompile(pattern).FindStringSubmatch(log)
	if m == nil {
		t.Fatalf("the log lacks %q", pattern)
	}
	return m[1]
}

func loggedInt(t *testing.T, log, pattern string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(loggedString(t, log, pattern), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
