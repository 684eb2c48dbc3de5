package nomad

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/hashicorp/nomad/api"
)

// imageAttr prefixes the node attributes the solstice-vm driver sets per
// catalog image (driver/plugin fingerprint): "<prefix><name>" = true for
// every label and alias it offers, and for a label
// "<prefix><label>.sha256", ".cached" and ".size"; for an alias
// "<prefix><alias>.alias_of".
const imageAttr = "driver.solstice-vm.image."

// NodeImage is one catalog image on one Nomad client.
type NodeImage struct {
	Node    string // the node's name
	NodeID  string
	Label   string
	AliasOf string // for an alias, its label
	SHA256  string // empty when the catalog gives none
	Cached  string // "true" or "false"; empty when the driver cannot tell
	Size    int64  // the cached base's size in bytes, when cached
	// Healthy is the node's solstice-vm driver health: Nomad places no
	// task on an unhealthy one.
	Healthy bool
}

// Images lists, for every client whose solstice-vm driver is healthy,
// the images it offers and whether each is in its cache, sorted by node
// and label.
func (c *Client) Images(ctx context.Context) ([]NodeImage, error) {
	q := (&api.QueryOptions{}).WithContext(ctx)
	stubs, _, err := c.API.Nodes().List(q)
	if err != nil {
		return nil, fmt.Errorf("list nodes: %w", err)
	}
	var all []NodeImage
	for _, s := range stubs {
		d := s.Drivers["solstice-vm"]
		if d == nil || !d.Detected {
			continue
		}
		node, _, err := c.API.Nodes().Info(s.ID, q)
		if err != nil {
			return nil, fmt.Errorf("node %s: %w", s.Name, err)
		}
		imgs := nodeImages(node.Name, node.ID, node.Attributes)
		for i := range imgs {
			imgs[i].Healthy = d.Healthy
		}
		all = append(all, imgs...)
	}
	sort.Slice(all, func(i, j int) bool {
		if all[i].Node != all[j].Node {
			return all[i].Node < all[j].Node
		}
		return all[i].Label < all[j].Label
	})
	return all, nil
}

// nodeImages reads one node's image attributes.
func nodeImages(node, id string, attrs map[string]string) []NodeImage {
	var out []NodeImage
	for k, v := range attrs {
		name, ok := strings.CutPrefix(k, imageAttr)
		if !ok || v != "true" || isSubKey(name, attrs) {
			continue
		}
		img := NodeImage{Node: node, NodeID: id, Label: name, AliasOf: attrs[k+".alias_of"],
			SHA256: attrs[k+".sha256"], Cached: attrs[k+".cached"]}
		img.Size, _ = strconv.ParseInt(attrs[k+".size"], 10, 64)
		out = append(out, img)
	}
	return out
}

// isSubKey reports whether name is one of a label's detail keys
// ("solstice-test.cached" is true when that image is cached), not an image.
func isSubKey(name string, attrs map[string]string) bool {
	i := strings.LastIndexByte(name, '.')
	if i < 0 {
		return false
	}
	switch name[i+1:] {
	case "cached", "sha256", "size", "alias_of":
		return attrs[imageAttr+name[:i]] == "true"
	}
	return false
}
