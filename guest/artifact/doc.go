// Package artifact moves workflow artifacts between a guest and the
// forge with the Actions artifact v4 API (Twirp ArtifactService plus
// signed blob URLs), the protocol Gitea 1.26 and GitHub both serve; see
// docs/artifacts.md for the sources. It streams: an upload is zipped into
// a fixed-size block buffer and sent block by block, a download is spooled
// to a size-limited temporary file and extracted with every name checked,
// so memory never grows with the artifact and nothing lands outside the
// destination.
package artifact
