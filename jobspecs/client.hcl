# Example Nomad client configuration for a Solstice node. Put the
# solstice-vm binary (built with make build: the guest agents are embedded
# in it) in plugin_dir, alone; the plugin block's label must match the
# binary's file name. docs/install-and-upgrade.md walks through it,
# docs/driver.md explains every field.
plugin_dir = "/opt/nomad/plugins"

plugin "solstice-vm" {
  config {
    cache_dir   = "/var/lib/solstice/images"
    accelerator = "auto"

    # OmniOS r151056, a stable release (the LTS release is r151054).
    # OmniOS publishes every release's images under
    # https://downloads.omnios.org/media/<release>/, each file with its
    # checksum beside it as <file>.sha256. Name the release directory, not
    # /media/stable/ or /media/lts/: those move on to the next release, and
    # the checksum would no longer match. Until sha256 holds the published
    # checksum the driver refuses this image (docs/images.md).
    image "omnios-r151056" {
      source      = "https://downloads.omnios.org/media/r151056/omnios-r151056.cloud.raw.zst"
      sha256      = "REPLACE-with-the-contents-of-omnios-r151056.cloud.raw.zst.sha256"
      format      = "raw"
      compression = "zstd"
      os          = "illumos"
      user        = "omnios"
    }
  }
}
