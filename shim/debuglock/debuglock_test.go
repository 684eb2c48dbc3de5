package debuglock

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/internal/contract"
)

// casVars keeps Variables in memory with Nomad's check-and-set rules: a
// write or delete names the modify index it expects (0: none exists).
type casVars struct {
	vars  map[string]*api.Variable
	index uint64
}

func (c *casVars) Peek(path string, _ *api.QueryOptions) (*api.Variable, *api.QueryMeta, error) {
	if v, ok := c.vars[path]; ok {
		cp := *v
		return &cp, nil, nil
	}
	return nil, nil, nil
}

func (c *casVars) current(path string) uint64 {
	if v, ok := c.vars[path]; ok {
		return v.ModifyIndex
	}
	return 0
}

func (c *casVars) CheckedUpdate(v *api.Variable, _ *api.WriteOptions) (*api.Variable, *api.WriteMeta, error) {
	if cur := c.current(v.Path); cur != v.ModifyIndex {
		return nil, nil, api.ErrCASConflict{CheckIndex: v.ModifyIndex, Conflict: c.vars[v.Path]}
	}
	c.index++
	cp := *v
	cp.ModifyIndex = c.index
	c.vars[v.Path] = &cp
	return &cp, nil, nil
}

func (c *casVars) CheckedDelete(path string, index uint64, _ *api.WriteOptions) (*api.WriteMeta, error) {
	if cur := c.current(path); cur != index {
		return nil, api.ErrCASConflict{CheckIndex: index, Conflict: c.vars[path]}
	}
	delete(c.vars, path)
	return nil, nil
}

func TestOneSessionPerRepository(t *testing.T) {
	ctx := context.Background()
	vars := &casVars{vars: map[string]*api.Variable{}}
	now := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	first, err := Acquire(ctx, vars, "alice/app", "job-1", now.Add(30*time.Minute), now)
	if err != nil {
		t.Fatalf("first session: %v", err)
	}
	_, err = Acquire(ctx, vars, "alice/app", "job-2", now.Add(30*time.Minute), now.Add(time.Minute))
	var held *Held
	if !errors.As(err, &held) || held.Holder != "job-1" {
		t.Fatalf("second session in the same repository: %v, want it held by job-1", err)
	}
	if _, err := Acquire(ctx, vars, "bob/lib", "job-3", now.Add(30*time.Minute), now); err != nil {
		t.Fatalf("another repository's session: %v", err)
	}
	// After expiry the lock is taken over; the old holder's release then
	// leaves the new lease alone.
	second, err := Acquire(ctx, vars, "alice/app", "job-2", now.Add(time.Hour), now.Add(31*time.Minute))
	if err != nil {
		t.Fatalf("taking over an expired lock: %v", err)
	}
	if err := Release(ctx, vars, first); err != nil {
		t.Fatalf("stale release: %v", err)
	}
	if _, ok := vars.vars[Path("alice/app")]; !ok {
		t.Fatal("a stale release removed the new holder's lock")
	}
	if err := Release(ctx, vars, second); err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(ctx, vars, "alice/app", "job-4", now.Add(2*time.Hour), now.Add(32*time.Minute)); err != nil {
		t.Fatalf("after release: %v", err)
	}
}

func TestRaceLostToAnotherShim(t *testing.T) {
	ctx := context.Background()
	vars := &casVars{vars: map[string]*api.Variable{}}
	now := time.Now()
	// Another shim writes between this one's read and write.
	racing := &racer{casVars: vars, before: func() {
		vars.CheckedUpdate(&api.Variable{Path: Path("alice/app"), Items: api.VariableItems{
			"holder": "job-9", "expires": now.Add(time.Hour).UTC().Format(time.RFC3339)}}, nil)
	}}
	_, err := Acquire(ctx, racing, "alice/app", "job-1", now.Add(time.Hour), now)
	var held *Held
	if !errors.As(err, &held) || held.Holder != "job-9" {
		t.Fatalf("lost race: %v, want it held by job-9", err)
	}
}

type racer struct {
	*casVars
	before func()
}

func (r *racer) CheckedUpdate(v *api.Variable, q *api.WriteOptions) (*api.Variable, *api.WriteMeta, error) {
	if r.before != nil {
		r.before()
		r.before = nil
	}
	return r.casVars.CheckedUpdate(v, q)
}

func TestPathFitsNomad(t *testing.T) {
	long := string(make([]byte, 500))
	if p := Path(long); len(p) > 128 {
		t.Fatalf("path %q is over Nomad's 128 characters", p)
	}
}

func TestGuard(t *testing.T) {
	ctx := context.Background()
	vars := &casVars{vars: map[string]*api.Variable{}}
	now := time.Now()
	session := contract.Event{Type: contract.TypeDebugSession, Debug: &contract.DebugSession{Host: "h", Port: 1, User: "u", Expires: now.Add(time.Hour)}}
	ended := contract.Event{Type: contract.TypeDebugEnded}
	first := &Guard{Vars: vars, Repository: "r", Holder: "job-1"}
	second := &Guard{Vars: vars, Repository: "r", Holder: "job-2"}
	if v, err := first.On(ctx, session, now); err != nil || !v.Show || !v.Opened {
		t.Fatalf("first session: %+v %v", v, err)
	}
	v, err := second.On(ctx, session, now)
	if err != nil || v.Show || !strings.Contains(v.Refusal, "No debug session: job job-1 holds this repository's debug session") {
		t.Fatalf("second session: %+v %v", v, err)
	}
	if v, _ := second.On(ctx, ended, now); v.Show || v.Closed {
		t.Fatalf("a refused session's end is shown: %+v", v)
	}
	if v, err := first.On(ctx, ended, now); err != nil || !v.Show || !v.Closed {
		t.Fatalf("first session's end: %+v %v", v, err)
	}
	if len(vars.vars) != 0 {
		t.Fatalf("the lock was not released: %v", vars.vars)
	}
	// A request the driver could not serve: only its debug_ended comes.
	if v, _ := (&Guard{Vars: vars}).On(ctx, contract.Event{Type: contract.TypeDebugEnded, Message: "No debug session: x."}, now); !v.Show || v.Closed {
		t.Fatalf("refusal by the driver: %+v", v)
	}
}

// deniedVars is Nomad answering as it does when the shim's token lacks the
// Variables capability on the lock's path (or is down): reads, writes or
// both fail.
type deniedVars struct {
	casVars
	read, write error
}

func (d *deniedVars) Peek(path string, q *api.QueryOptions) (*api.Variable, *api.QueryMeta, error) {
	if d.read != nil {
		return nil, nil, d.read
	}
	return d.casVars.Peek(path, q)
}

func (d *deniedVars) CheckedUpdate(v *api.Variable, q *api.WriteOptions) (*api.Variable, *api.WriteMeta, error) {
	if d.write != nil {
		return nil, nil, d.write
	}
	return d.casVars.CheckedUpdate(v, q)
}

// TestGuardWithoutTheLock: a lock that cannot be read or taken gives no
// session, and the forge log's line says so and why.
func TestGuardWithoutTheLock(t *testing.T) {
	denied := errors.New("Unexpected response code: 403 (Permission denied)")
	session := contract.Event{Type: contract.TypeDebugSession, Debug: &contract.DebugSession{Host: "h", Port: 1, User: "u", Expires: time.Now().Add(time.Hour)}}
	tests := []struct {
		name        string
		read, write error
		want        string
	}{
		{"read denied", denied, nil, "read the debug lock of alice/app: Unexpected response code: 403 (Permission denied)"},
		{"write denied", nil, denied, "take the debug lock of alice/app: Unexpected response code: 403 (Permission denied)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vars := &deniedVars{casVars: casVars{vars: map[string]*api.Variable{}}, read: tt.read, write: tt.write}
			g := &Guard{Vars: vars, Repository: "alice/app", Holder: "job-1"}
			v, err := g.On(context.Background(), session, time.Now())
			if !errors.Is(err, denied) {
				t.Errorf("error %v, want the denial", err)
			}
			if v.Show || v.Opened || !strings.HasPrefix(v.Refusal, "No debug session: the runner could not use the debug lock") || !strings.Contains(v.Refusal, tt.want) {
				t.Fatalf("verdict %+v, want a refusal saying %q", v, tt.want)
			}
			if v, _ := g.On(context.Background(), contract.Event{Type: contract.TypeDebugEnded}, time.Now()); v.Show || v.Closed {
				t.Fatalf("the refused session's end is shown: %+v", v)
			}
		})
	}
}
