package vm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/driver/guestssh"
)

// Stop powers a VM off without depending on ACPI, which some guests ignore
// or handle slowly: first the guest OS's own command over SSH (command,
// empty to skip), given up to half of timeout to take the guest down;
// then Shutdown (the ACPI button, then kill) with the time left. It
// reports whether the guest went down by itself.
func Stop(ctx context.Context, m Machine, g Guest, command string, timeout time.Duration) (clean bool) {
	start := time.Now()
	if command != "" && g != nil && askPowerOff(ctx, m, g, command, timeout/2) {
		return true
	}
	return Shutdown(ctx, m, max(timeout-time.Since(start), 0))
}

// askPowerOff runs the command and waits up to budget for QEMU to exit.
func askPowerOff(ctx context.Context, m Machine, g Guest, command string, budget time.Duration) bool {
	select {
	case <-m.Exited():
		return true
	default:
	}
	actx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := g.PowerOff(actx, command); err != nil {
		return false
	}
	select {
	case <-m.Exited():
		return true
	case <-actx.Done():
		return false
	}
}

// PowerOffScript is what runs in the guest for a power-off command: as is
// for root, else through sudo -n (the seed gives the login user
// passwordless sudo); quoted so the command is one argument of sh -c.
func PowerOffScript(command string) string {
	q := "'" + strings.ReplaceAll(command, "'", `'\''`) + "'"
	return `if [ "$(id -u)" = 0 ]; then exec sh -c ` + q + `; else exec sudo -n sh -c ` + q + `; fi`
}

// PowerOff runs the command over SSH. The guest going down drops the
// session, which is success; only a command that ran and failed, or no
// login at all, is an error.
func (g *sshGuest) PowerOff(ctx context.Context, command string) error {
	c, err := g.SSH(ctx)
	if err != nil {
		return fmt.Errorf("power off: %w", err)
	}
	_, err = c.Output(ctx, PowerOffScript(command), nil)
	if err == nil {
		return nil
	}
	var exit *guestssh.ExitError
	if errors.As(err, &exit) || ctx.Err() != nil {
		return fmt.Errorf("power off with %q: %w", command, err)
	}
	return nil
}
