package contract

import (
	"strings"
	"testing"
)

// A stream of events, each line decoded as the shims decode it, checked
// against a three-step plan: the first error and where it came.
func TestCheckerTable(t *testing.T) {
	const start = `{"seq":1,"type":"job_started","steps":3}`
	big := strings.Repeat("x", MaxField+1)
	for _, tc := range []struct {
		name  string
		lines []string
		want  string // the error, "" for none
		skips int    // events not to render
	}{
		{"good", []string{start, `{"seq":2,"type":"step_started","step":0}`, `{"seq":3,"type":"log","step":0,"line":"hi"}`,
			`{"seq":4,"type":"step_finished","step":0,"conclusion":"success"}`, `{"seq":5,"type":"log","step":-1,"line":"x"}`,
			`{"seq":6,"type":"job_finished","conclusion":"success"}`}, "", 0},
		{"the attacker's line", []string{start, `{"seq":9999,"type":"step_started","step":-1}`}, "step_started: step index -1, outside the plan's 3 steps", 0},
		{"step past the plan", []string{start, `{"seq":2,"type":"log","step":12,"line":"x"}`}, "log: step index 12, outside the plan's 3 steps", 0},
		{"job-level step_started", []string{start, `{"seq":2,"type":"step_summary","step":-1,"markdown":"x"}`}, "outside the plan", 0},
		{"before job_started", []string{`{"seq":1,"type":"step_started","step":0}`}, "before the job started", 0},
		{"job started twice", []string{start, `{"seq":2,"type":"job_started","steps":3}`}, "already started", 0},
		{"too many steps", []string{`{"seq":1,"type":"job_started","steps":100000}`}, "100000 steps", 0},
		{"plan disagrees", []string{`{"seq":1,"type":"job_started","steps":2}`}, "but the plan has 3", 0},
		{"finished unstarted", []string{start, `{"seq":2,"type":"step_finished","step":1,"conclusion":"success"}`}, "step 2 finished but did not run", 0},
		{"two open", []string{start, `{"seq":2,"type":"step_started","step":0}`, `{"seq":3,"type":"step_started","step":1}`}, "while step 1 runs", 0},
		{"started twice", []string{start, `{"seq":2,"type":"step_started","step":0}`, `{"seq":3,"type":"step_finished","step":0,"conclusion":"success"}`,
			`{"seq":4,"type":"step_started","step":0}`}, "started twice", 0},
		{"bad conclusion", []string{start, `{"seq":2,"type":"job_finished","conclusion":"pwned"}`}, "unknown conclusion", 0},
		{"huge name", []string{start, `{"seq":2,"type":"step_started","step":0,"name":"` + big + `"}`}, "its name is", 0},
		{"repeats and unknown types skipped", []string{start, start, `{"seq":1,"type":"log","step":99}`, `{"seq":2,"type":"from_the_future","step":99}`,
			`{"seq":3,"type":"log","step":1}`}, "", 3},
		{"gaps allowed", []string{start, `{"seq":7,"type":"log","step":1}`}, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &Checker{Steps: 3}
			skips := 0
			for _, l := range tc.lines {
				ev, err := DecodeEvent([]byte(l))
				if err != nil {
					t.Fatal(err)
				}
				ok, err := c.Check(&ev)
				if err != nil {
					if tc.want == "" || !strings.Contains(err.Error(), tc.want) {
						t.Fatalf("error %v, want %q", err, tc.want)
					}
					return
				}
				if !ok {
					skips++
				}
			}
			if tc.want != "" {
				t.Fatalf("no error, want %q", tc.want)
			}
			if skips != tc.skips {
				t.Errorf("%d skipped, want %d", skips, tc.skips)
			}
		})
	}
}
