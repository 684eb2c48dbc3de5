package forgejo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	runnerv1 "code.gitea.io/actions-proto-go/runner/v1"
)

// Registration is what registering a runner needs.
type Registration struct {
	URL     string   // the forge's root URL
	Token   string   // a registration token from the forge
	Name    string   // the runner's name in the forge
	Labels  []string // label names the runner serves
	Version string   // the shim's version, shown in the forge
	// Observe, if set, is told the outcome of every forge call made while
	// connecting, so /healthz reports a forge that is down at startup.
	Observe func(method string, err error)
}

// Register registers a new runner with the forge and stores its
// credentials. An existing registration in the store is replaced.
func Register(ctx context.Context, store Store, r Registration) (*Credentials, error) {
	if r.Token == "" || r.Name == "" {
		return nil, errors.New("register: a registration token and a runner name are needed")
	}
	anon := NewClient(r.URL, "", "")
	anon.Observe = r.Observe
	runner, err := anon.Register(ctx, &runnerv1.RegisterRequest{
		Name: r.Name, Token: r.Token, Version: r.Version, Labels: r.Labels,
	})
	if refused(err) {
		return nil, fmt.Errorf("%w: the forge refused to register runner %q: %w", errConfig, r.Name, err)
	}
	if err != nil {
		return nil, fmt.Errorf("register runner %q with %s: %w", r.Name, r.URL, err)
	}
	c := &Credentials{ID: runner.Id, UUID: runner.Uuid, Token: runner.Token, Name: r.Name, URL: r.URL}
	if err := store.Save(ctx, c); err != nil {
		return nil, fmt.Errorf("runner %q is registered (id %d) but its credentials could not be kept: %w", r.Name, runner.Id, err)
	}
	return c, nil
}

// connectRunner returns a client for the stored runner, registering one
// first when none is stored, and declares the labels. A stored runner the
// forge no longer knows is registered again when a registration token is
// at hand; otherwise that is an error that says what to do.
func connectRunner(ctx context.Context, store Store, r Registration) (*Client, *Credentials, error) {
	creds, err := store.Load(ctx)
	if err != nil {
		return nil, nil, err
	}
	if creds == nil {
		if r.Token == "" {
			return nil, nil, fmt.Errorf("%w: runner %q is not registered with %s: run `solstice forgejo register` or pass a registration token", errConfig, r.Name, r.URL)
		}
		if creds, err = Register(ctx, store, r); err != nil {
			return nil, nil, err
		}
	}
	c := NewClient(r.URL, creds.UUID, creds.Token)
	c.Observe = r.Observe
	err = c.Declare(ctx, r.Version, r.Labels)
	if errors.Is(err, ErrUnauthorized) && r.Token != "" {
		if creds, err = Register(ctx, store, r); err != nil {
			return nil, nil, err
		}
		c = NewClient(r.URL, creds.UUID, creds.Token)
		c.Observe = r.Observe
		err = c.Declare(ctx, r.Version, r.Labels)
	}
	if errors.Is(err, ErrUnauthorized) {
		return nil, nil, fmt.Errorf("runner %q (uuid %s) is not accepted by %s; it was probably deleted there: register it again with `solstice forgejo register`: %w", r.Name, creds.UUID, r.URL, err)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("declare the labels of runner %q: %w", r.Name, err)
	}
	return c, creds, nil
}

// CatalogLabels is the label set a runner declares by default: every label
// and alias of the catalog, sorted.
func CatalogLabels(catalog map[string]string) []string {
	labels := make([]string, 0, len(catalog))
	for l := range catalog {
		labels = append(labels, l)
	}
	slices.Sort(labels)
	return labels
}

// ParseLabels splits a comma-separated label list. A Gitea-style
// "name:docker://image" keeps only its name, as runners send only names.
func ParseLabels(s string) []string {
	var out []string
	for _, l := range strings.Split(s, ",") {
		if i := strings.Index(l, ":"); i >= 0 {
			l = l[:i]
		}
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(out, l) {
			out = append(out, l)
		}
	}
	return out
}
