package contract

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestGuestOSDefaults(t *testing.T) {
	tests := []struct {
		os       string
		path     []string
		shell    string
		poweroff string
	}{
		{"illumos", []string{"/usr/gnu/bin"}, "", "/usr/sbin/poweroff"},
		{"linux", nil, "", "poweroff"},
		{"freebsd", nil, "sh", "shutdown -p now"},
		{"openbsd", nil, "sh", "shutdown -hp now"},
		{"netbsd", nil, "sh", "shutdown -p now"},
	}
	if len(tests) != len(GuestOSDefaults) {
		t.Errorf("table has %v, test covers %d", GuestOSNames(), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.os, func(t *testing.T) {
			d, err := DefaultsFor(tc.os)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(d.PathPrepend, tc.path) || d.DefaultShell != tc.shell || d.PowerOff != tc.poweroff || d.WorkRoot != "" {
				t.Errorf("got %+v", d)
			}
			if err := CheckGuestSettings(d.Settings()); err != nil {
				t.Errorf("default settings invalid: %v", err)
			}
		})
	}
}

func TestDefaultsForIsACopy(t *testing.T) {
	d, _ := DefaultsFor("illumos")
	d.PathPrepend[0] = "/changed"
	if again, _ := DefaultsFor("illumos"); again.PathPrepend[0] != "/usr/gnu/bin" {
		t.Errorf("the table changed: %v", again.PathPrepend)
	}
}

func TestDefaultsForUnknown(t *testing.T) {
	_, err := DefaultsFor("windows")
	if err == nil || !strings.Contains(err.Error(), "freebsd") {
		t.Errorf("err = %v, want one listing the known OSes", err)
	}
}

func TestCheckGuestSettings(t *testing.T) {
	tests := []struct {
		name string
		g    *GuestSettings
		bad  string // substring of the error; "" for valid
	}{
		{"nil", nil, ""},
		{"full", &GuestSettings{PathPrepend: []string{"/usr/gnu/bin", "/opt/ooce/bin"}, Shell: "bash", WorkRoot: "/export/ci"}, ""},
		{"format shell", &GuestSettings{Shell: "/usr/bin/ksh93 -e {0}"}, ""},
		{"relative path", &GuestSettings{PathPrepend: []string{"bin"}}, "path_prepend"},
		{"list separator", &GuestSettings{PathPrepend: []string{"/a:/b"}}, "path_prepend"},
		{"relative work root", &GuestSettings{WorkRoot: "work"}, "work_root"},
		{"shell without {0}", &GuestSettings{Shell: "ksh -e"}, "shell"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := CheckGuestSettings(tc.g)
			if (err == nil) != (tc.bad == "") || (err != nil && !strings.Contains(err.Error(), tc.bad)) {
				t.Errorf("err = %v, want %q", err, tc.bad)
			}
		})
	}
}

func TestPlanGuestRoundTripAndValidation(t *testing.T) {
	p := &Plan{Version: PlanVersion, Job: Job{ID: "j"}, Steps: []Step{{Run: "true"}},
		Guest: &GuestSettings{PathPrepend: []string{"/usr/gnu/bin"}, Shell: "bash", WorkRoot: "/w"}}
	var buf bytes.Buffer
	if err := EncodePlan(&buf, p); err != nil {
		t.Fatal(err)
	}
	got, err := DecodePlan(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got.Guest, p.Guest) {
		t.Errorf("guest %+v, want %+v", got.Guest, p.Guest)
	}
	got.Guest.PathPrepend = []string{"relative"}
	if err := got.Validate(); err == nil || !strings.Contains(err.Error(), "guest") {
		t.Errorf("Validate = %v, want a guest error", err)
	}
	// Strict decoding still refuses unknown fields inside guest.
	if _, err := DecodePlan(strings.NewReader(`{"version":1,"job":{"id":"j"},"steps":[],"guest":{"pth":["/x"]}}`)); err == nil {
		t.Error("unknown field in guest accepted")
	}
}
