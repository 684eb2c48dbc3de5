// Package nomadvar keeps the shims' small JSON documents (runner
// credentials, records of acquired jobs) in Nomad Variables, so a shim
// keeps no state of its own: Nomad encrypts Variables at rest and guards
// them with ACLs, and a restarted shim on any node finds them again.
package nomadvar

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/hashicorp/nomad/api"

	"github.com/solstice-ci/solstice/shim/nomad"
)

// MaxPath is the longest Variable path Nomad accepts.
const MaxPath = 128

// item is the Variable item that holds the document.
const item = "json"

// Sanitize replaces every character Nomad does not allow in a Variable
// path with _.
func Sanitize(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '~', r == '/':
			return r
		}
		return '_'
	}, s)
}

// CheckPath refuses a path Nomad would refuse for its length.
func CheckPath(path string) error {
	if len(path) > MaxPath {
		return fmt.Errorf("variable path %q is longer than Nomad's %d characters", path, MaxPath)
	}
	return nil
}

// Store reads and writes JSON documents under Variable paths.
type Store struct {
	API *api.Client
}

// Load decodes the document at path into v. It reports false, and no
// error, when the Variable does not exist.
func (s Store) Load(ctx context.Context, path string, v any) (bool, error) {
	vr, _, err := s.API.Variables().Peek(path, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return false, fmt.Errorf("read Nomad Variable %s: %w", path, err)
	}
	if vr == nil {
		return false, nil
	}
	raw, ok := vr.Items[item]
	if !ok {
		return false, fmt.Errorf("variable %s has no %q item", path, item)
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return false, fmt.Errorf("decode Nomad Variable %s: %w", path, err)
	}
	return true, nil
}

// Save writes v as the document at path, replacing what was there.
func (s Store) Save(ctx context.Context, path string, v any) error {
	if err := CheckPath(path); err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode Nomad Variable %s: %w", path, err)
	}
	vr := &api.Variable{Path: path, Items: api.VariableItems{item: string(b)}}
	if _, _, err := s.API.Variables().Update(vr, (&api.WriteOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("write Nomad Variable %s: %w", path, err)
	}
	return nil
}

// Delete removes the Variable at path; a missing one is not an error.
func (s Store) Delete(ctx context.Context, path string) error {
	_, err := s.API.Variables().Delete(path, (&api.WriteOptions{}).WithContext(ctx))
	if err != nil && !nomad.IsNotFound(err) {
		return fmt.Errorf("delete Nomad Variable %s: %w", path, err)
	}
	return nil
}

// List returns the paths of the Variables under prefix.
func (s Store) List(ctx context.Context, prefix string) ([]string, error) {
	metas, _, err := s.API.Variables().PrefixList(prefix, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("list Nomad Variables under %s: %w", prefix, err)
	}
	paths := make([]string, 0, len(metas))
	for _, m := range metas {
		paths = append(paths, m.Path)
	}
	return paths, nil
}
