# Example Nomad client configuration for a Solstice node. Put the
# solstice-vm binary in plugin_dir; the plugin block's label must match the
# binary's file name. docs/driver.md explains every field.
plugin_dir = "/opt/nomad/plugins"

plugin "solstice-vm" {
  config {
    cache_dir   = "/var/lib/solstice/images"
    accelerator = "auto"

    image "omnios-r151056" {
      source  = "https://downloads.omnios.org/media/lts/omnios-r151056.cloud.qcow2"
      sha256  = "0000000000000000000000000000000000000000000000000000000000000000" # the published checksum
      format  = "qcow2"
      os      = "illumos"
      user    = "omnios"
      aliases = ["omnios-lts", "omnios-stable"]
    }
  }
}
