package plugin

import (
	"fmt"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/image"
)

func TestDownloadReporter(t *testing.T) {
	const total = 100 << 20
	tests := []struct {
		name  string
		total int64
		// each report: seconds since start, MiB done
		reports [][2]int64
		want    []string
	}{
		{
			name:    "tenths, at most once a second",
			total:   total,
			reports: [][2]int64{{0, 1}, {1, 5}, {2, 11}, {2, 30}, {3, 31}, {4, 45}, {5, 100}},
			want: []string{
				"Downloading image: img: 1.0 MiB of 100.0 MiB (1%), 1.0 MiB/s",
				"Downloading image: img: 11.0 MiB of 100.0 MiB (11%), 1.0 MiB/s",
				"Downloading image: img: 31.0 MiB of 100.0 MiB (31%), 1.0 MiB/s",
				"Downloading image: img: 45.0 MiB of 100.0 MiB (45%), 1.0 MiB/s",
				"Downloading image: img: 100.0 MiB of 100.0 MiB (100%), 1.0 MiB/s",
			},
		},
		{
			name:    "the end is reported however soon after the last report",
			total:   total,
			reports: [][2]int64{{0, 85}, {0, 95}, {0, 100}},
			want: []string{
				"Downloading image: img: 85.0 MiB of 100.0 MiB (85%), 1.0 MiB/s",
				"Downloading image: img: 100.0 MiB of 100.0 MiB (100%), 1.0 MiB/s",
			},
		},
		{
			name:    "a slow download still reports every 30s",
			total:   total,
			reports: [][2]int64{{0, 1}, {20, 2}, {31, 3}, {50, 4}, {61, 5}},
			want: []string{
				"Downloading image: img: 1.0 MiB of 100.0 MiB (1%), 1.0 MiB/s",
				"Downloading image: img: 3.0 MiB of 100.0 MiB (3%), 1.0 MiB/s",
				"Downloading image: img: 5.0 MiB of 100.0 MiB (5%), 1.0 MiB/s",
			},
		},
		{
			name:    "unknown size",
			reports: [][2]int64{{0, 1}, {10, 50}, {30, 60}},
			want: []string{
				"Downloading image: img: 1.0 MiB, 1.0 MiB/s",
				"Downloading image: img: 60.0 MiB, 1.0 MiB/s",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Unix(0, 0)
			now := start
			var got []string
			r := &downloadReporter{label: "img", now: func() time.Time { return now },
				emit: func(msg string, ann map[string]string) {
					got = append(got, msg)
					if ann["bytes_done"] == "" || ann["image"] != "img" {
						t.Errorf("annotations %v", ann)
					}
				}}
			for _, rep := range tt.reports {
				now = start.Add(time.Duration(rep[0]) * time.Second)
				r.report(image.Progress{Done: rep[1] << 20, Total: tt.total, Rate: 1 << 20})
			}
			if fmt.Sprintf("%q", got) != fmt.Sprintf("%q", tt.want) {
				t.Errorf("events:\n%q\nwant:\n%q", got, tt.want)
			}
		})
	}
}
