package forgejo

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// memStore keeps credentials in memory.
type memStore struct {
	mu    sync.Mutex
	creds *Credentials
	saves int
}

func (s *memStore) Load(context.Context) (*Credentials, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.creds == nil {
		return nil, nil
	}
	c := *s.creds
	return &c, nil
}

func (s *memStore) Save(_ context.Context, c *Credentials) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cc := *c
	s.creds = &cc
	s.saves++
	return nil
}

func fastTiming() Timing {
	return Timing{
		Fetch: 10 * time.Millisecond, Heartbeat: 40 * time.Millisecond, LogFlush: 10 * time.Millisecond,
		Status: 10 * time.Millisecond, NoEvent: 200 * time.Millisecond, EndWait: 2 * time.Second,
		RetryMin: 10 * time.Millisecond, RetryMax: 100 * time.Millisecond, CatalogTTL: 50 * time.Millisecond,
	}
}

// env is a fake forge, a fake Nomad and a credentials store.
type env struct {
	t     *testing.T
	forge *fakeForge
	nomad *fakeNomad
	store *memStore
	// lastRunner is the runner start returned last.
	lastRunner *running
}

func newEnv(t *testing.T) *env {
	return &env{t: t, forge: newFakeForge(t), nomad: newFakeNomad(), store: &memStore{}}
}

func (e *env) config(mod ...func(*Config)) Config {
	cfg := Config{
		URL: e.forge.URL(), Name: "shim-1", Capacity: 4, RegistrationToken: "REGTOKEN", Version: "test",
		Store: e.store, Nomad: e.nomad, Timing: fastTiming(),
		Log: hclog.New(&hclog.LoggerOptions{Level: hclog.Warn, Output: testWriter{e.t}}),
	}
	for _, m := range mod {
		m(&cfg)
	}
	return cfg
}

// running is a runner started in the background.
type running struct {
	rt     *Runner
	cancel context.CancelFunc
	done   chan error
}

// start runs a runner until the test ends (or stop).
func (e *env) start(mod ...func(*Config)) *running {
	e.t.Helper()
	rt, err := New(e.config(mod...))
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{rt: rt, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- rt.Run(ctx) }()
	e.t.Cleanup(func() { r.stop(e.t) })
	e.lastRunner = r
	return r
}

// stop shuts the runner down and returns what Run returned.
func (r *running) stop(t *testing.T) error {
	r.cancel()
	select {
	case err := <-r.done:
		r.done <- err
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the runner did not stop within 10s")
		return nil
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

const goodJob = `
name: CI
on: push
jobs:
  build:
    runs-on: solstice-test
    steps:
      - run: echo hello
      - run: echo world
`

func (s *memStore) saved() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves
}
