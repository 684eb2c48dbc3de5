package nomad

import (
	"fmt"
	"sort"
	"testing"
)

func TestNodeImages(t *testing.T) {
	attrs := map[string]string{
		"driver.solstice-vm":                                     "true",
		"driver.solstice-vm.version":                             "0.1.0",
		"driver.solstice-vm.image.solstice-test":                 "true",
		"driver.solstice-vm.image.solstice-test.sha256":          "abc",
		"driver.solstice-vm.image.solstice-test.cached":          "true",
		"driver.solstice-vm.image.solstice-test.size":            "83427328",
		"driver.solstice-vm.image.debian-test":                   "true",
		"driver.solstice-vm.image.debian-test.alias_of":          "solstice-test",
		"driver.solstice-vm.image.omnios-r151056":                "true",
		"driver.solstice-vm.image.omnios-r151056.sha256":         "def",
		"driver.solstice-vm.image.omnios-r151056.cached":         "false",
		"driver.solstice-vm.image.local-raw":                     "true", // a file source without sha256
		"driver.solstice-vm.image.omnios-r151056.something-else": "x",
		"unique.hostname":                                        "n1",
	}
	got := nodeImages("n1", "id1", attrs)
	sort.Slice(got, func(i, j int) bool { return got[i].Label < got[j].Label })
	want := []NodeImage{
		{Node: "n1", NodeID: "id1", Label: "debian-test", AliasOf: "solstice-test"},
		{Node: "n1", NodeID: "id1", Label: "local-raw"},
		{Node: "n1", NodeID: "id1", Label: "omnios-r151056", SHA256: "def", Cached: "false"},
		{Node: "n1", NodeID: "id1", Label: "solstice-test", SHA256: "abc", Cached: "true", Size: 83427328},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("nodeImages:\n%v\nwant\n%v", got, want)
	}
}
