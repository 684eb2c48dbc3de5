package debuglock

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// Guard is one job's side of the lock: what a shim does with the job's
// debug events. The zero Vars means no lock (tests without Nomad).
type Guard struct {
	Vars       Vars
	Repository string // names the repository across forges and runners
	Holder     string // the dispatched job

	lease   *Lease
	refused bool
	open    bool
}

// Verdict is what to do with one debug event.
type Verdict struct {
	Show    bool   // render the event (its message) in the forge log
	Refusal string // a line for the forge log: the job gets no session and is to be stopped
	Opened  bool   // a session opened (count it)
	Closed  bool   // a counted session ended
}

// On handles a debug_session or debug_ended event of the job.
func (g *Guard) On(ctx context.Context, ev contract.Event, now time.Time) (Verdict, error) {
	switch {
	case g.refused:
		return Verdict{}, nil // the driver's own end of a refused session
	case ev.Type == contract.TypeDebugEnded:
		v := Verdict{Show: true, Closed: g.open}
		g.open = false
		return v, g.release(ctx)
	case ev.Type != contract.TypeDebugSession || ev.Debug == nil:
		return Verdict{}, nil
	}
	if g.Vars != nil {
		lease, err := Acquire(ctx, g.Vars, g.Repository, g.Holder, ev.Debug.Expires, now)
		var held *Held
		if errors.As(err, &held) {
			g.refused = true
			return Verdict{Refusal: fmt.Sprintf("No debug session: %v.", held)}, nil
		}
		if err != nil {
			// Without the lock the promise of one session per
			// repository cannot be kept: no session.
			g.refused = true
			return Verdict{Refusal: fmt.Sprintf("No debug session: the runner could not use the debug lock that keeps a repository to one session (%v).", err)}, err
		}
		g.lease = lease
	}
	g.open = true
	return Verdict{Show: true, Opened: true}, nil
}

func (g *Guard) release(ctx context.Context) error {
	if g.lease == nil {
		return nil
	}
	l := g.lease
	g.lease = nil
	return Release(ctx, g.Vars, l)
}
