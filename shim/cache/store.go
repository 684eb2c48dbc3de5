package cache

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
)

// Errors a caller can tell apart.
var (
	ErrExists   = errors.New("a cache entry with this key and version exists")
	ErrNotFound = errors.New("no such cache entry")
	ErrTooLarge = errors.New("cache entry is larger than the limit")
)

// Entry is one finalized cache entry's metadata.
type Entry struct {
	ID      string    `json:"id"`
	Key     string    `json:"key"`
	Version string    `json:"version"`
	Size    int64     `json:"size"`
	Created time.Time `json:"created"`
}

// Store keeps entries under dir: dir/<repo hash>/<id>.json (metadata),
// <id>.blob (the archive) and pending/<id>/ (blocks of an upload). The
// file system is the index, so a restarted shim loses nothing; a
// metadata file's modification time is the entry's last use, for LRU.
type Store struct {
	dir      string
	limit    int64 // total bytes of all entries
	maxEntry int64
	mu       sync.Mutex
	now      func() time.Time
}

// NewStore opens (creating) a store under dir with a total size limit;
// one entry may use at most a quarter of it.
func NewStore(dir string, limit int64) (*Store, error) {
	if limit <= 0 {
		return nil, errors.New("cache size limit must be positive")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cache directory %s: %w", dir, err)
	}
	return &Store{dir: dir, limit: limit, maxEntry: max(limit/4, 1), now: time.Now}, nil
}

// repoDir is a repository's directory: a hash, so no name can reach
// outside the store or collide after case folding.
func (s *Store) repoDir(repo string) string {
	sum := sha256.Sum256([]byte(normRepo(repo)))
	return filepath.Join(s.dir, hex.EncodeToString(sum[:12]))
}

// Reserve starts an upload of (key, version) for repo and returns its id.
func (s *Store) Reserve(repo, key, version string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.exact(repo, key, version); err == nil {
		return "", ErrExists
	}
	if _, err := s.pendingFor(repo, key, version); err == nil {
		return "", ErrExists // another job is saving it now
	}
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make entry id: %w", err)
	}
	id := hex.EncodeToString(b)
	if err := os.MkdirAll(s.pendingDir(repo, id), 0o700); err != nil {
		return "", fmt.Errorf("reserve cache entry: %w", err)
	}
	meta, _ := json.Marshal(Entry{ID: id, Key: key, Version: version, Created: s.now().UTC()})
	if err := os.WriteFile(filepath.Join(s.pendingDir(repo, id), "meta"), meta, 0o600); err != nil {
		return "", fmt.Errorf("reserve cache entry: %w", err)
	}
	return id, nil
}

// pendingTTL is how long a reserved upload blocks others of its key.
const pendingTTL = time.Hour

// pendingFor finds the live pending upload of (key, version) and removes
// abandoned ones.
func (s *Store) pendingFor(repo, key, version string) (string, error) {
	dir := filepath.Join(s.repoDir(repo), "pending")
	names, _ := os.ReadDir(dir)
	for _, n := range names {
		if !validID(n.Name()) {
			continue
		}
		e, err := readEntry(filepath.Join(dir, n.Name(), "meta"))
		if err != nil || s.now().Sub(e.Created) > pendingTTL {
			os.RemoveAll(filepath.Join(dir, n.Name()))
			continue
		}
		if e.Key == key && e.Version == version {
			return n.Name(), nil
		}
	}
	return "", ErrNotFound
}

func (s *Store) pendingDir(repo, id string) string {
	return filepath.Join(s.repoDir(repo), "pending", id)
}

// validID accepts only ids Reserve makes (they come back in URLs).
func validID(id string) bool {
	if len(id) != 32 {
		return false
	}
	_, err := hex.DecodeString(id)
	return err == nil
}

// entries lists repo's finalized entries.
func (s *Store) entries(repo string) ([]Entry, error) {
	dir := s.repoDir(repo)
	names, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list cache entries: %w", err)
	}
	var out []Entry
	for _, n := range names {
		id, ok := strings.CutSuffix(n.Name(), ".json")
		if !ok || !validID(id) {
			continue
		}
		e, err := readEntry(filepath.Join(dir, n.Name()))
		if err == nil {
			out = append(out, e)
		}
	}
	return out, nil
}

func readEntry(p string) (Entry, error) {
	data, err := os.ReadFile(p)
	if err != nil {
		return Entry{}, err
	}
	var e Entry
	err = json.Unmarshal(data, &e)
	return e, err
}

func (s *Store) exact(repo, key, version string) (Entry, error) {
	es, err := s.entries(repo)
	if err != nil {
		return Entry{}, err
	}
	for _, e := range es {
		if e.Key == key && e.Version == version {
			return e, nil
		}
	}
	return Entry{}, ErrNotFound
}

// Lookup finds the entry actions/cache restores: the exact key, else the
// newest entry whose key starts with the first restore key that matches
// any, all of the same version. It marks the entry used.
func (s *Store) Lookup(repo, key string, restoreKeys []string, version string) (Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	es, err := s.entries(repo)
	if err != nil {
		return Entry{}, err
	}
	slices.SortFunc(es, func(a, b Entry) int { return b.Created.Compare(a.Created) })
	for _, prefix := range append([]string{key}, restoreKeys...) {
		for _, e := range es {
			if e.Version != version {
				continue
			}
			if e.Key == key || (prefix != key && strings.HasPrefix(e.Key, prefix)) {
				s.touch(repo, e.ID)
				return e, nil
			}
		}
	}
	return Entry{}, ErrNotFound
}

func (s *Store) touch(repo, id string) {
	now := s.now()
	_ = os.Chtimes(filepath.Join(s.repoDir(repo), id+".json"), now, now)
}

// BlobPath is the archive of a finalized entry.
func (s *Store) BlobPath(repo, id string) (string, error) {
	if !validID(id) {
		return "", ErrNotFound
	}
	p := filepath.Join(s.repoDir(repo), id+".blob")
	if _, err := os.Stat(filepath.Join(s.repoDir(repo), id+".json")); err != nil {
		return "", ErrNotFound
	}
	return p, nil
}
