// Command solstice-vm is the Solstice Nomad task driver plugin. Nomad starts
// it from plugin_dir; it is not meant to be run by hand.
package main

import (
	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/nomad/plugins"

	"github.com/solstice-ci/solstice/driver/plugin"
)

func main() {
	plugins.Serve(func(log hclog.Logger) interface{} {
		return plugin.New(log)
	})
}
