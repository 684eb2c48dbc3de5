// Package debuglock allows at most one debug session per repository across
// every shim: a Nomad Variable per repository, written and removed with
// check-and-set, whose lease carries an expiry so that a lock whose shim
// died lapses by itself.
package debuglock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/nomad/api"
)

// Prefix is where the locks live; the shims' ACL policy grants it.
const Prefix = "solstice/debug/"

// Vars is the part of Nomad's Variables API a lock needs.
type Vars interface {
	Peek(path string, q *api.QueryOptions) (*api.Variable, *api.QueryMeta, error)
	CheckedUpdate(v *api.Variable, q *api.WriteOptions) (*api.Variable, *api.WriteMeta, error)
	CheckedDelete(path string, checkIndex uint64, q *api.WriteOptions) (*api.WriteMeta, error)
}

// Lease is a held lock.
type Lease struct {
	Path       string
	Repository string
	Holder     string // the dispatched job that holds the session
	Expires    time.Time
	index      uint64
}

// Held is the answer when another job holds the repository's session.
type Held struct {
	Holder  string
	Expires time.Time
}

func (h *Held) Error() string {
	return fmt.Sprintf("job %s holds this repository's debug session until %s", h.Holder, h.Expires.UTC().Format("15:04:05 UTC"))
}

// Path is the lock's Variable path for a repository: hashed, because a
// repository name may be longer than a Variable path or hold characters
// paths refuse.
func Path(repository string) string {
	sum := sha256.Sum256([]byte(repository))
	return Prefix + hex.EncodeToString(sum[:16])
}

// Acquire takes the repository's lock for holder until expires. Another
// live holder's lock is refused with a *Held error; an expired one is
// taken over.
func Acquire(ctx context.Context, vars Vars, repository, holder string, expires time.Time, now time.Time) (*Lease, error) {
	path := Path(repository)
	cur, _, err := vars.Peek(path, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("read the debug lock of %s: %w", repository, err)
	}
	var index uint64
	if cur != nil {
		held := heldBy(cur)
		if held.Holder != holder && now.Before(held.Expires) {
			return nil, held
		}
		index = cur.ModifyIndex
	}
	v := &api.Variable{Path: path, ModifyIndex: index, Items: api.VariableItems{
		"repository": repository, "holder": holder, "expires": expires.UTC().Format(time.RFC3339),
	}}
	out, _, err := vars.CheckedUpdate(v, (&api.WriteOptions{}).WithContext(ctx))
	var conflict api.ErrCASConflict
	if errors.As(err, &conflict) && conflict.Conflict != nil {
		return nil, heldBy(conflict.Conflict) // another shim came first
	}
	if err != nil {
		return nil, fmt.Errorf("take the debug lock of %s: %w", repository, err)
	}
	return &Lease{Path: path, Repository: repository, Holder: holder, Expires: expires, index: out.ModifyIndex}, nil
}

// heldBy reads a lock's holder; an unreadable expiry counts as expired.
func heldBy(v *api.Variable) *Held {
	exp, _ := time.Parse(time.RFC3339, v.Items["expires"])
	return &Held{Holder: v.Items["holder"], Expires: exp}
}

// Release gives the lock back, unless someone took it over meanwhile.
func Release(ctx context.Context, vars Vars, l *Lease) error {
	_, err := vars.CheckedDelete(l.Path, l.index, (&api.WriteOptions{}).WithContext(ctx))
	var conflict api.ErrCASConflict
	if errors.As(err, &conflict) {
		return nil // taken over after it expired: no longer ours to remove
	}
	if err != nil {
		return fmt.Errorf("release the debug lock of %s: %w", l.Repository, err)
	}
	return nil
}
