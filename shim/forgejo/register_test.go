package forgejo

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestRegisterThenDeclareOnEveryStart(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	waitFor(t, 5*time.Second, "registration", func() bool { return e.store.saved() == 1 })
	waitFor(t, 5*time.Second, "a FetchTask", func() bool { return e.forge.count("FetchTask") > 0 })
	if err := r.stop(t); err != nil {
		t.Fatalf("Run = %v", err)
	}
	creds, _ := e.store.Load(context.Background())
	fr := e.forge.runner(creds.UUID)
	if fr == nil || fr.name != "shim-1" || fr.version != "test" {
		t.Fatalf("forge runner = %+v (creds %+v)", fr, creds)
	}
	// The labels default to the catalog: every label and alias, sorted.
	if want := []string{"debian-test", "solstice-test"}; !slices.Equal(fr.labels, want) {
		t.Fatalf("declared labels %v, want %v", fr.labels, want)
	}

	// A second start reuses the credentials and declares again.
	e.nomad.catalog["omnios-lts"] = "omnios-r151056"
	e.nomad.catalog["omnios-r151056"] = "omnios-r151056"
	r = e.start(func(c *Config) { c.RegistrationToken = "" })
	waitFor(t, 5*time.Second, "a second Declare", func() bool { return e.forge.count("Declare") == 2 })
	r.stop(t)
	if e.forge.count("Register") != 1 || e.store.saved() != 1 {
		t.Fatalf("Register called %d times, %d saves; want 1", e.forge.count("Register"), e.store.saved())
	}
	if fr = e.forge.runner(creds.UUID); !slices.Contains(fr.labels, "omnios-lts") {
		t.Fatalf("labels after the catalog grew: %v", fr.labels)
	}
}

func TestExplicitLabelsAndRegisterCommand(t *testing.T) {
	e := newEnv(t)
	creds, err := Register(context.Background(), e.store, Registration{URL: e.forge.URL(), Token: "REGTOKEN", Name: "x", Labels: ParseLabels("a, b:docker://img,a"), Version: "v"})
	if err != nil {
		t.Fatal(err)
	}
	if got := e.forge.runner(creds.UUID).labels; !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("registered labels %v", got)
	}
}

func TestConnectErrorsNeedAnOperator(t *testing.T) {
	tests := []struct {
		name  string
		token string
		creds *Credentials
		want  string
	}{
		{"wrong registration token", "WRONG", nil, "registration token not found"},
		{"not registered, no token", "", nil, "is not registered"},
		{"deleted runner, no token", "", &Credentials{UUID: "gone", Token: "x"}, "probably deleted"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			e.store.creds = tt.creds
			rt, err := New(e.config(func(c *Config) { c.RegistrationToken = tt.token }))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			err = rt.Run(ctx)
			if err == nil || !strings.Contains(err.Error(), tt.want) || ctx.Err() != nil {
				t.Fatalf("Run = %v after %s; want an error with %q at once", err, time.Since(start), tt.want)
			}
			if calls := e.forge.count("Register") + e.forge.count("Declare"); calls > 2 {
				t.Fatalf("%d calls: retried", calls)
			}
		})
	}
}

func TestDeletedRunnerIsRegisteredAgainWithAToken(t *testing.T) {
	e := newEnv(t)
	e.store.creds = &Credentials{UUID: "gone", Token: "x", Name: "shim-1"}
	e.start()
	waitFor(t, 5*time.Second, "registration", func() bool { return e.forge.count("FetchTask") > 0 })
	if c, _ := e.store.Load(context.Background()); c.UUID == "gone" {
		t.Fatal("credentials not replaced")
	}
}

func TestAuthFailureStopsTheRunner(t *testing.T) {
	e := newEnv(t)
	r := e.start()
	waitFor(t, 5*time.Second, "polling", func() bool { return e.forge.count("FetchTask") > 2 })
	e.forge.deleteRunners() // the admin deleted the runner in the web UI
	select {
	case err := <-r.done:
		r.done <- err
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Run = %v, want ErrUnauthorized", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the runner kept going with rejected credentials")
	}
	calls := e.forge.count("FetchTask")
	time.Sleep(100 * time.Millisecond)
	if e.forge.count("FetchTask") != calls {
		t.Fatal("FetchTask still called after the runner stopped")
	}
	if ok, why := r.rt.Metrics().Healthy(); ok || !strings.Contains(why, "credentials") {
		t.Fatalf("Healthy = %v %q", ok, why)
	}
}

func TestVariablePath(t *testing.T) {
	tests := []struct {
		url, name, want string
	}{
		{"http://10.210.1.2:3000/", "shim-1", "solstice/runners/forgejo/10-210-1-2_3000/shim-1"},
		{"https://forge.example.org", "a b", "solstice/runners/forgejo/forge-example-org/a_b"},
		{"https://example.org/git/", "r", "solstice/runners/forgejo/example-org/git/r"},
	}
	for _, tt := range tests {
		if got, err := VariablePath(tt.url, tt.name); err != nil || got != tt.want {
			t.Errorf("VariablePath(%q, %q) = %q, %v; want %q", tt.url, tt.name, got, err, tt.want)
		}
	}
	if _, err := VariablePath("not a url", "x"); err == nil {
		t.Error("VariablePath accepted a URL without a host")
	}
}
