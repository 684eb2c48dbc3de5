//go:build !solstice_embed

package guestagents

// archive is empty in builds without the solstice_embed tag (see embedded.go).
var archive []byte
