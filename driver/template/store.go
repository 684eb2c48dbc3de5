package template

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/driver/image"
)

// Store is the directory of one client's templates, under the plugin's data
// dir so they survive a plugin restart. Layout: <dir>/<key id>/ holds a
// complete template; <dir>/<key id>.build-*/ a build in progress.
type Store struct {
	Dir string

	mu       sync.Mutex
	locks    map[string]*sync.RWMutex // per key id: clones read, a commit writes
	building map[string]bool
}

// ErrMissing is Lookup's error when no template was ever saved for a key.
var ErrMissing = errors.New("no template yet")

// ErrBuilding is Begin's error (and Lookup's, for a missing template) while
// the key's template is being built.
var ErrBuilding = errors.New("template is being built")

// Open makes the store's directory and removes builds an earlier plugin
// process left unfinished: nothing can resume them.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create template dir %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list template dir %s: %w", dir, err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".build-") || strings.Contains(e.Name(), ".old-") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
	return &Store{Dir: dir, locks: map[string]*sync.RWMutex{}, building: map[string]bool{}}, nil
}

func (s *Store) lock(id string) *sync.RWMutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.locks[id]
	if !ok {
		l = &sync.RWMutex{}
		s.locks[id] = l
	}
	return l
}

// Acquire returns the key's template, checked against its manifest, and
// keeps it from being replaced until release is called: a clone holds it
// while QEMU opens the template's files. The error says why there is no
// usable template (ErrMissing, ErrBuilding, or what is broken).
func (s *Store) Acquire(k Key) (t *Template, release func(), err error) {
	l := s.lock(k.ID())
	l.RLock()
	t, err = s.load(k)
	if err != nil {
		l.RUnlock()
		if errors.Is(err, ErrMissing) && s.isBuilding(k.ID()) {
			err = ErrBuilding
		}
		return nil, nil, err
	}
	return t, l.RUnlock, nil
}

func (s *Store) isBuilding(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.building[id]
}

// load reads and checks the key's template.
func (s *Store) load(k Key) (*Template, error) {
	dir := filepath.Join(s.Dir, k.ID())
	b, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrMissing
	}
	if err != nil {
		return nil, fmt.Errorf("read template manifest: %w", err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("template manifest %s: %w", dir, err)
	}
	if m.Key != k {
		return nil, fmt.Errorf("template manifest %s is for another key", dir)
	}
	t := &Template{Dir: dir, Manifest: m}
	if err := t.check(); err != nil {
		return nil, fmt.Errorf("template %s is broken: %w", k.ID(), err)
	}
	return t, nil
}

// Build is a template being made, in a directory of its own until Commit.
type Build struct {
	Dir   string
	key   Key
	store *Store
}

// Path is one of the build's files.
func (b *Build) Path(name string) string { return filepath.Join(b.Dir, name) }

// Begin starts the key's build, unless one is already under way.
func (s *Store) Begin(k Key) (*Build, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	id := k.ID()
	s.mu.Lock()
	if s.building[id] {
		s.mu.Unlock()
		return nil, ErrBuilding
	}
	s.building[id] = true
	s.mu.Unlock()
	dir, err := os.MkdirTemp(s.Dir, id+".build-")
	if err != nil {
		s.done(id)
		return nil, fmt.Errorf("create template build dir: %w", err)
	}
	return &Build{Dir: dir, key: k, store: s}, nil
}

func (s *Store) done(id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.building, id)
}

// Abort throws the build away.
func (b *Build) Abort() {
	os.RemoveAll(b.Dir)
	b.store.done(b.key.ID())
}

// Commit stamps the build's files, writes its manifest and puts it in the
// key's place, replacing a broken template there. Clones that started from
// the old one keep their open files; new clones wait for the switch.
func (b *Build) Commit(hostKey []byte) (*Template, error) {
	defer b.store.done(b.key.ID())
	m, err := b.manifest(hostKey)
	if err != nil {
		os.RemoveAll(b.Dir)
		return nil, err
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		os.RemoveAll(b.Dir)
		return nil, fmt.Errorf("encode template manifest: %w", err)
	}
	if err := os.WriteFile(b.Path(ManifestFile), data, 0o600); err != nil {
		os.RemoveAll(b.Dir)
		return nil, fmt.Errorf("write template manifest: %w", err)
	}
	final := filepath.Join(b.store.Dir, b.key.ID())
	l := b.store.lock(b.key.ID())
	l.Lock()
	defer l.Unlock()
	if err := replaceDir(b.Dir, final); err != nil {
		os.RemoveAll(b.Dir)
		return nil, err
	}
	return &Template{Dir: final, Manifest: m}, nil
}

// manifest stamps the finished files.
func (b *Build) manifest(hostKey []byte) (Manifest, error) {
	m := Manifest{Key: b.key, CreatedAt: time.Now().UTC(), HostKey: hostKey}
	var err error
	for _, f := range []struct {
		name string
		into *FileStamp
	}{{DiskFile, &m.Disk}, {RAMFile, &m.RAM}, {StateFile, &m.State}} {
		if *f.into, err = Stamp(b.Path(f.name)); err != nil {
			return Manifest{}, fmt.Errorf("template build is incomplete: %w", err)
		}
	}
	if m.StateSHA256, err = image.HashFile(context.Background(), b.Path(StateFile)); err != nil {
		return Manifest{}, fmt.Errorf("hash the template's %s: %w", StateFile, err)
	}
	return m, nil
}

// replaceDir moves dir to final, first moving aside whatever is there.
func replaceDir(dir, final string) error {
	old := final + ".old-" + filepath.Base(dir)
	if err := os.Rename(final, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("move old template aside: %w", err)
	}
	if err := os.Rename(dir, final); err != nil {
		return fmt.Errorf("install template: %w", err)
	}
	os.RemoveAll(old)
	return nil
}

// Prune removes the templates of keys no longer in use (an image's new
// checksum, a plugin upgrade). Running clones keep their open files.
func (s *Store) Prune(keep map[string]bool) error {
	entries, err := os.ReadDir(s.Dir)
	if err != nil {
		return fmt.Errorf("list template dir: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || keep[name] || strings.Contains(name, ".") {
			continue
		}
		l := s.lock(name)
		l.Lock()
		os.RemoveAll(filepath.Join(s.Dir, name))
		l.Unlock()
	}
	return nil
}
