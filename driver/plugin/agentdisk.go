package plugin

import (
	"path/filepath"

	"github.com/solstice-ci/solstice/driver/agentdisk"
)

// useAgentDisk readies the shared read-only disk that carries the task's
// guest agent, for a task with a job plan, so QEMU attaches it at boot and
// the guest copies the agent from it instead of receiving it over SSH.
// Without one the job still runs: the agent is uploaded over SSH, and the
// "Agent started" event says why.
func (l *launch) useAgentDisk() string {
	if l.tc.Plan == "" {
		return ""
	}
	if l.clone != nil {
		// findTemplate made (and hashed) the disk already: it is the key's.
		d := l.clone.agentDisk
		l.agentDisk = &d
		return d.Path
	}
	d, err := l.agentDiskImage()
	if err != nil {
		l.log.Warn("no agent disk; the agent will be uploaded over ssh", "error", err)
		l.noDisk = "no agent disk: " + err.Error()
		return "" // without an agent at all, launchJob fails on the same error
	}
	l.agentDisk = &d
	return d.Path
}

// agentDiskImage is the agent disk of the image's OS, built on first use.
func (l *launch) agentDiskImage() (agentdisk.Disk, error) {
	agent, err := l.d.agentBinary(l.img.OS)
	if err != nil {
		return agentdisk.Disk{}, err
	}
	return agentdisk.Ensure(filepath.Join(l.conf.CacheDir, "agent-disks"), agent)
}
