// Package jobspecs ships Solstice's Nomad jobspecs: the parent job of each
// runs-on label (labels/) and the runner shims' service job. They are plain
// files for operators to edit and register; the package embeds them so that
// `solstice run` can register the built-in label on a local agent.
package jobspecs

import "embed"

// Labels holds labels/*.nomad.hcl.
//
//go:embed labels/*.nomad.hcl
var Labels embed.FS

// ACL holds acl/*.policy.hcl: the least-privilege policies of the shims'
// service job and of each label parent job, with "${namespace}" for the
// namespace they apply to.
//
//go:embed acl/*.policy.hcl
var ACL embed.FS
