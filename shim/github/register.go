package github

import (
	"context"
	"fmt"
	"strings"

	"github.com/solstice-ci/solstice/shim/github/protocol"
)

// Registration registers runners with GitHub, like the official
// runner's config.sh.
type Registration struct {
	protocol.RegisterOptions
	// Runners is how many runners to register: NAME when 1, else NAME-1 …
	// NAME-N. Each holds one broker session, so N jobs run at once.
	Runners int
}

// RunnerNames are the names Register gives.
func (r Registration) RunnerNames() []string {
	if r.Runners <= 1 {
		return []string{r.Name}
	}
	names := make([]string, r.Runners)
	for i := range names {
		names[i] = fmt.Sprintf("%s-%d", r.Name, i+1)
	}
	return names
}

// Register registers the runners and stores their credentials. A runner
// already stored is registered again, replacing it on GitHub.
func Register(ctx context.Context, store *Store, r Registration) ([]*protocol.Credentials, error) {
	var out []*protocol.Credentials
	for _, name := range r.RunnerNames() {
		if err := store.CheckRunnerName(name); err != nil {
			return out, err
		}
		o := r.RegisterOptions
		o.Name, o.Replace = name, true
		creds, err := protocol.Register(ctx, o)
		if err != nil {
			return out, fmt.Errorf("register runner %q: %w", name, err)
		}
		if err := store.SaveRunner(ctx, creds); err != nil {
			return out, fmt.Errorf("runner %q is registered on GitHub (id %d) but its credentials could not be stored: %w", name, creds.RunnerID, err)
		}
		out = append(out, creds)
	}
	return out, nil
}

// RegisterJIT stores the runner of a JIT config (GitHub's
// generate-jitconfig API), with labels when given: a JIT config does
// not carry them.
func RegisterJIT(ctx context.Context, store *Store, blob string, labels []string) (*protocol.Credentials, error) {
	creds, err := protocol.ParseJITConfig(strings.TrimSpace(blob))
	if err != nil {
		return nil, fmt.Errorf("read the JIT config: %w", err)
	}
	if len(labels) > 0 {
		creds.Labels = labels
	}
	if err := store.CheckRunnerName(creds.RunnerName); err != nil {
		return nil, err
	}
	if err := store.SaveRunner(ctx, creds); err != nil {
		return nil, fmt.Errorf("store the JIT runner %q: %w", creds.RunnerName, err)
	}
	return creds, nil
}

// Remove unregisters the named runners (every stored one when names is
// empty) from GitHub and forgets them.
func Remove(ctx context.Context, store *Store, o protocol.RegisterOptions, names []string) ([]string, error) {
	if len(names) == 0 {
		var err error
		if names, err = store.Runners(ctx); err != nil {
			return nil, err
		}
	}
	var removed []string
	for _, name := range names {
		creds, err := store.LoadRunner(ctx, name)
		if err != nil {
			return removed, err
		}
		if creds == nil {
			return removed, fmt.Errorf("runner %q is not registered for %s", name, o.URL)
		}
		if err := protocol.Remove(ctx, o, creds); err != nil {
			return removed, fmt.Errorf("remove runner %q from GitHub: %w", name, err)
		}
		if err := store.DeleteRunner(ctx, name); err != nil {
			return removed, err
		}
		removed = append(removed, name)
	}
	return removed, nil
}
