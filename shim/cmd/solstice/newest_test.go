package main

import "testing"

func TestNewestImage(t *testing.T) {
	img := func(v string) string { return "/r/.cache/images/solstice-test-" + v + "/solstice-test.qcow2" }
	cases := []struct {
		name  string
		paths []string
		want  string
	}{
		{"none", nil, ""},
		{"one", []string{img("3")}, img("3")},
		{"ten is newer than nine", []string{img("10"), img("9")}, img("10")},
		{"not a version", []string{img("4"), img("x")}, img("4")},
	}
	for _, tc := range cases {
		if got := newestImage(tc.paths); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}
