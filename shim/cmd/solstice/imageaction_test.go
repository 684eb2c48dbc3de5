package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/solstice-ci/solstice/shim/nomad"
)

// catalog: w1 has omnios cached, w2 offers it uncached, w3's driver is
// unhealthy, w4 offers only the test image; "lts" is omnios's alias.
var catalog = []nomad.NodeImage{
	{Node: "w1", NodeID: "aaaa1111", Label: "omnios", Cached: "true", Healthy: true},
	{Node: "w1", NodeID: "aaaa1111", Label: "lts", AliasOf: "omnios", Healthy: true},
	{Node: "w2", NodeID: "aaaa2222", Label: "omnios", Cached: "false", Healthy: true},
	{Node: "w2", NodeID: "aaaa2222", Label: "lts", AliasOf: "omnios", Healthy: true},
	{Node: "w3", NodeID: "bbbb3333", Label: "omnios", Cached: "false"},
	{Node: "w4", NodeID: "cccc4444", Label: "test", Cached: "false", Healthy: true},
}

func TestChooseTargets(t *testing.T) {
	tests := []struct {
		name        string
		image       string
		nodes       []string
		skipCached  bool
		wantTargets string
		wantSkipped string
		wantErr     string
	}{
		{name: "every healthy client", image: "omnios", wantTargets: "w1,w2"},
		{name: "pull skips cached", image: "omnios", skipCached: true, wantTargets: "w2", wantSkipped: "w1"},
		{name: "an alias counts its label's cache", image: "lts", skipCached: true, wantTargets: "w2", wantSkipped: "w1"},
		{name: "by name", image: "omnios", nodes: []string{"w2"}, wantTargets: "w2"},
		{name: "by id prefix, unhealthy when asked for", image: "omnios", nodes: []string{"bbbb"}, wantTargets: "w3"},
		{name: "twice is once", image: "omnios", nodes: []string{"w2", "aaaa2222"}, wantTargets: "w2"},
		{name: "ambiguous prefix", image: "omnios", nodes: []string{"aaaa"}, wantErr: "-node aaaa: names 2 clients"},
		{name: "unknown node", image: "omnios", nodes: []string{"w9"}, wantErr: "-node w9: no client with the solstice-vm driver"},
		{name: "node without the image", image: "omnios", nodes: []string{"w4"}, wantErr: `-node w4: client w4 does not offer image "omnios"`},
		{name: "unknown image", image: "nope", wantErr: `no client whose solstice-vm driver is healthy offers image "nope"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			targets, skipped, err := chooseTargets(catalog, tt.image, tt.nodes, tt.skipCached)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, tg := range targets {
				names = append(names, tg.Node)
			}
			if got := strings.Join(names, ","); got != tt.wantTargets || strings.Join(skipped, ",") != tt.wantSkipped {
				t.Fatalf("targets %q skipped %q, want %q and %q", got, skipped, tt.wantTargets, tt.wantSkipped)
			}
		})
	}
}

func TestReportImageResults(t *testing.T) {
	ok := nomad.ImageResult{ImageTarget: nomad.ImageTarget{Node: "w1"}, Outcome: "ok", Detail: "matches"}
	bad := nomad.ImageResult{ImageTarget: nomad.ImageTarget{Node: "w2"}, Outcome: "failed", Detail: "the cached /x has sha256 1, the catalog wants 2"}
	none := nomad.ImageResult{ImageTarget: nomad.ImageTarget{Node: "w3"}, Outcome: "not cached"}
	var out, errOut bytes.Buffer
	if code := reportImageResults(&out, &errOut, "solstice image verify", "omnios", []nomad.ImageResult{ok, none}); code != exitOK || errOut.Len() != 0 {
		t.Fatalf("exit %d, stderr %q; want 0 when nothing failed", code, errOut.String())
	}
	if out.String() != "w1: ok: matches\nw3: not cached\n" {
		t.Errorf("stdout %q", out.String())
	}
	out.Reset()
	if code := reportImageResults(&out, &errOut, "solstice image verify", "omnios", []nomad.ImageResult{ok, bad}); code != exitFail {
		t.Fatalf("exit %d, want 1", code)
	}
	if errOut.String() != "solstice image verify: omnios failed on 1 of 2 clients: w2\n" || !strings.Contains(out.String(), "w2: failed: the cached /x") {
		t.Errorf("stdout %q stderr %q", out.String(), errOut.String())
	}
}
