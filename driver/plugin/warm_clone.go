package plugin

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/solstice-ci/solstice/driver/agentport"
	"github.com/solstice-ci/solstice/driver/qemu"
	"github.com/solstice-ci/solstice/driver/task"
	"github.com/solstice-ci/solstice/driver/template"
	"github.com/solstice-ci/solstice/driver/vm"
	"github.com/solstice-ci/solstice/internal/contract"
)

// bootWarmOrCold starts the task as a clone of its image's template when
// there is one, and boots it cold otherwise, or when the clone fails to
// come up: a broken template costs a task time, never its run.
func (l *launch) bootWarmOrCold(ctx context.Context) (*task.Handle, error) {
	l.clone = l.warmTemplate()
	if l.clone == nil {
		return l.boot(ctx)
	}
	h, err := l.boot(ctx)
	if err == nil {
		return h, nil
	}
	id := l.clone.tpl.Manifest.Key.ID()
	l.releaseTemplate()
	l.rollback()
	l.undo, l.clone, l.hostKey, l.port = nil, nil, nil, nil
	l.log.Warn("warm start failed; booting cold", "template", id, "error", err)
	l.d.emit(l.cfg, "Cold start", fmt.Sprintf("warm start from template %s failed: %v", id, err))
	return l.boot(ctx)
}

// warmNote is the "Booting" event's word on where the guest comes from.
func (l *launch) warmNote() string {
	if l.clone == nil {
		return ""
	}
	return ", restored from template " + l.clone.tpl.Manifest.Key.ID()
}

// warmTimes is the Started event's word on a clone's restore and identity
// reset, which the benchmark reads too.
func (l *launch) warmTimes() string {
	if l.clone == nil {
		return ""
	}
	return fmt.Sprintf(" (restored in %s, own identity in %s)", l.restored.Round(10*time.Millisecond), l.reidentified.Round(10*time.Millisecond))
}

// restoreFrom makes spec a clone of the template: its disk on the frozen
// one, its RAM the template's file mapped privately, its devices from the
// saved state.
func (l *launch) restoreFrom(spec *qemu.Spec) {
	if l.clone == nil {
		return
	}
	t := l.clone.tpl
	// A restore needs the template's devices exactly: the template had the
	// agent disk, so every clone has it, with or without a plan to run.
	spec.AgentDisk = l.clone.agentDisk.Path
	spec.Template = t.Path(template.DiskFile)
	spec.RAM = &qemu.RAM{Path: t.Path(template.RAMFile)}
	spec.Incoming = t.Path(template.StateFile)
}

// releaseTemplate lets a rebuild replace the template again; a clone's
// QEMU keeps the files it opened.
func (l *launch) releaseTemplate() {
	if l.clone != nil && l.clone.release != nil {
		l.clone.release()
		l.clone.release = nil
	}
}

// reidentifyTimeout bounds the identity reset of a restored clone.
const reidentifyTimeout = 2 * time.Minute

// attachPort gives a clone's spec its agent port: QEMU gets one end, the
// launch keeps the other (see package agentport).
func (l *launch) attachPort(spec *qemu.Spec) error {
	if l.clone == nil {
		return nil
	}
	qemuEnd, port, err := agentport.Pair()
	if err != nil {
		return err
	}
	spec.AgentPort, l.port = qemuEnd, port
	l.onFailure(func() { port.Close() })
	return nil
}

// reidentify gives a restored clone its own identity before anything else
// reaches it: the agent its template left serving the agent port replaces
// the login key, host key, hostname, machine id, random state, clock and
// lease with the task's, with no login (only the driver holds the port).
// After it only the task's key opens the guest, and logins insist on the
// task's host key.
func (l *launch) reidentify(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, reidentifyTimeout)
	defer cancel()
	start := time.Now()
	defer func() { l.reidentified = time.Since(start) }()
	id, err := l.identity()
	if err != nil {
		return err
	}
	if err := l.port.Identify(ctx, id); err != nil {
		return fmt.Errorf("reset the clone's identity: %w", err)
	}
	l.log.Info("clone has its own identity", "took", time.Since(start).Round(time.Millisecond).String())
	return nil
}

// releasePort ends a clone's port unless its job starts through it (a
// plan, and no repository bundle to upload first), and then waits until
// its sshd takes the task's logins: from then on the guest is SSH's, as a
// cold one is. Failing that fails the warm start, not the task.
func (l *launch) releasePort(ctx context.Context, g vm.Guest) error {
	if l.tc.Plan != "" && l.inputs.Bundle == "" && l.inputs.BundleURL == nil {
		return nil
	}
	port := l.port
	l.port = nil
	if err := port.Release(ctx); err != nil {
		l.log.Warn("could not release the agent port", "error", err)
	}
	if err := waitLogin(ctx, g); err != nil {
		return fmt.Errorf("log in to the clone with the task's key: %w", err)
	}
	return nil
}

// waitLogin logs in to a clone that has just taken its identity over its
// port: its sshd may still be restarting with the task's host key, so
// failures (a refusal, the template's host key) are retried for a while.
func waitLogin(ctx context.Context, g vm.Guest) error {
	deadline := time.Now().Add(sshdRestart)
	for {
		_, err := g.SSH(ctx)
		if err == nil || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// sshdRestart bounds how long a clone's sshd may take to come back with
// the task's host key after the identity reset told it to.
const sshdRestart = 20 * time.Second

// identity is what makes the clone the task's guest: its keys and names,
// and a random seed, machine id and clock made here.
func (l *launch) identity() (contract.Identity, error) {
	seed := make([]byte, 512)
	machineID := make([]byte, 16)
	if _, err := rand.Read(seed); err != nil {
		return contract.Identity{}, fmt.Errorf("make the clone's random seed: %w", err)
	}
	if _, err := rand.Read(machineID); err != nil {
		return contract.Identity{}, fmt.Errorf("make the clone's machine id: %w", err)
	}
	return contract.Identity{
		UnixNano: time.Now().UnixNano(), Seed: seed, MachineID: hex.EncodeToString(machineID),
		Hostname: hostname(l.cfg), InstanceID: l.cfg.AllocID,
		User: l.img.User, AuthorizedKey: l.authorizedKey,
		HostKeyPEM: l.hostKey.PrivatePEM, HostKeyPub: l.hostKey.Public,
	}, nil
}

// asRoot runs cmd as root: directly for root, else through sudo -n (the
// template's seed gave the image's user passwordless sudo).
func asRoot(cmd string) string {
	return `if [ "$(id -u)" = 0 ]; then exec ` + cmd + `; else exec sudo -n ` + cmd + `; fi`
}
