// Package forge is what the runner shims of every forge share: the health
// of the services a shim depends on, the HTTP server for /metrics and
// /healthz, and the rules that do not depend on the forge's protocol.
//
// Each shim keeps its own metrics (their names are its forge's) on a
// private prometheus.Registry, so two shims in one process, or a test
// next to a shim, never share series.
package forge
