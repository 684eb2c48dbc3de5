//go:build solstice_embed

package guestagents

import _ "embed"

// archive is bin/solstice-guest-* as `make build` packs them
// (agents.tar.xz, git-ignored); the solstice_embed tag is set only there,
// so `go build ./...` and `go vet` work without it.
//
//go:embed agents.tar.xz
var archive []byte
