package disk

import (
	"context"
	"crypto/rand"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkOverlayCreation measures a task's disk set-up on a sparse 10 GiB
// base and on a 100 MiB base filled with data, alternating between them in
// one run, and reports how much slower the big base is (ratio_10g_100m). An
// overlay never copies its base, so the ratio should stay near 1.
func BenchmarkOverlayCreation(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	big := filepath.Join(dir, "sparse-10g.raw")
	if err := os.Truncate(createFile(b, big), 10<<30); err != nil {
		b.Fatal(err)
	}
	small := filepath.Join(dir, "full-100m.raw")
	f, _ := os.Create(small)
	if _, err := io.CopyN(f, rand.Reader, 100<<20); err != nil {
		b.Fatal(err)
	}
	f.Close()

	const rounds = 20
	var tBig, tSmall time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			tBig += timeOverlay(b, ctx, big, dir)
			tSmall += timeOverlay(b, ctx, small, dir)
		}
	}
	n := float64(b.N * rounds)
	b.ReportMetric(float64(tBig.Microseconds())/n, "µs/overlay_10g")
	b.ReportMetric(float64(tSmall.Microseconds())/n, "µs/overlay_100m")
	b.ReportMetric(float64(tBig)/float64(tSmall), "ratio_10g_100m")
}

func createFile(b *testing.B, path string) string {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	f.Close()
	return path
}

func timeOverlay(b *testing.B, ctx context.Context, base, dir string) time.Duration {
	path := filepath.Join(dir, "overlay.qcow2")
	start := time.Now()
	if err := (Tool{}).CreateOverlay(ctx, base, "raw", path, 20<<30); err != nil {
		b.Fatal(err)
	}
	d := time.Since(start)
	os.Remove(path)
	return d
}
