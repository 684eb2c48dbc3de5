package workflow

import (
	"strings"
	"testing"
)

func TestResolveLabel(t *testing.T) {
	catalog := map[string]string{
		"omnios-r151056":      "omnios-r151056",
		"omnios":              "omnios-r151056",
		"omnios-lts":          "omnios-r151056",
		"openindiana-hipster": "openindiana-hipster",
	}
	const avail = "omnios-r151056 (omnios, omnios-lts), openindiana-hipster"
	tests := []struct {
		runsOn  []string
		want    string
		wantErr string
	}{
		{[]string{"omnios-r151056"}, "omnios-r151056", ""},
		{[]string{"omnios"}, "omnios-r151056", ""},
		{[]string{"self-hosted", "OmniOS", "x64"}, "omnios-r151056", ""},
		{[]string{"omnios", "omnios-lts"}, "omnios-r151056", ""},
		{[]string{"omnios", "openindiana-hipster"}, "", `runs-on [omnios, openindiana-hipster] names two images, "omnios-r151056" and "openindiana-hipster"; a job runs on exactly one (available: ` + avail + `)`},
		{[]string{"ubuntu-latest"}, "", `runs-on [ubuntu-latest]: no catalog image has label "ubuntu-latest" (available: ` + avail + `)`},
		{[]string{"omnios", "gpu"}, "", `runs-on [omnios, gpu]: no catalog image has label "gpu" (available: ` + avail + `)`},
		{[]string{"self-hosted"}, "", `runs-on [self-hosted] names no catalog image (available: ` + avail + `)`},
	}
	for _, tt := range tests {
		got, err := ResolveLabel(tt.runsOn, catalog)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ResolveLabel(%v) error:\n got %v\nwant %s", tt.runsOn, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ResolveLabel(%v) = %q, %v; want %q", tt.runsOn, got, err, tt.want)
		}
	}
}

func TestResolveLabels(t *testing.T) {
	w := mustParse(t, strings.Replace(matrixWorkflow("os: [omnios, windows]"), "runs-on: omnios", "runs-on: ${{ matrix.os }}", 1))
	runs, err := w.Runs()
	if err != nil {
		t.Fatal(err)
	}
	_, err = w.ResolveLabels(runs, map[string]string{"omnios": "omnios"})
	want := `wf.yml:4:14: run "test (windows)": runs-on [windows]: no catalog image has label "windows" (available: omnios) (jobs.<job_id>.runs-on)`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n got %v\nwant %s", err, want)
	}
	images, err := w.ResolveLabels(runs[:1], map[string]string{"omnios": "omnios"})
	if err != nil || images[0] != "omnios" {
		t.Errorf("images %v, %v", images, err)
	}
}
