package cache

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// maxBlocks bounds an upload's block list.
const maxBlocks = 50000

// PutBlock stores one block of a pending upload, at most max bytes.
func (s *Store) PutBlock(repo, id, blockID string, r io.Reader, max int64) error {
	p, err := s.blockPath(repo, id, blockID)
	if err != nil {
		return err
	}
	if err := s.checkPendingSize(repo, id, max); err != nil {
		return err
	}
	return writeLimited(p, r, max)
}

func (s *Store) blockPath(repo, id, blockID string) (string, error) {
	if !validID(id) || blockID == "" || len(blockID) > 128 {
		return "", ErrNotFound
	}
	dir := s.pendingDir(repo, id)
	if _, err := os.Stat(dir); err != nil {
		return "", ErrNotFound
	}
	return filepath.Join(dir, "b-"+base64.RawURLEncoding.EncodeToString([]byte(blockID))), nil
}

// checkPendingSize refuses a block once the upload holds maxEntry bytes.
func (s *Store) checkPendingSize(repo, id string, next int64) error {
	var total int64
	err := filepath.WalkDir(s.pendingDir(repo, id), func(_ string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), "b-") {
			if fi, err := d.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if total+next > s.maxEntry {
		return ErrTooLarge
	}
	return nil
}

// writeLimited writes r to p, failing (and removing p) beyond max bytes.
func writeLimited(p string, r io.Reader, max int64) error {
	out, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("store block: %w", err)
	}
	n, err := io.Copy(out, io.LimitReader(r, max+1))
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil && n > max {
		err = ErrTooLarge
	}
	if err != nil {
		os.Remove(p)
		return err
	}
	return nil
}

// CommitBlocks assembles the listed blocks, in order, into the upload's
// data file.
func (s *Store) CommitBlocks(repo, id string, blockIDs []string) error {
	if len(blockIDs) == 0 || len(blockIDs) > maxBlocks {
		return fmt.Errorf("block list of %d blocks", len(blockIDs))
	}
	dst := filepath.Join(s.pendingDir(repo, id), "data")
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("assemble cache entry: %w", err)
	}
	defer out.Close()
	for _, b := range blockIDs {
		if err := appendBlock(out, s, repo, id, b); err != nil {
			return err
		}
	}
	return out.Close()
}

func appendBlock(out *os.File, s *Store, repo, id, blockID string) error {
	p, err := s.blockPath(repo, id, blockID)
	if err != nil {
		return err
	}
	in, err := os.Open(p)
	if err != nil {
		return fmt.Errorf("block %q was not uploaded", blockID)
	}
	defer in.Close()
	_, err = io.Copy(out, in)
	return err
}

// PutWhole stores a whole upload at once (a single Put Blob).
func (s *Store) PutWhole(repo, id string, r io.Reader) error {
	if !validID(id) {
		return ErrNotFound
	}
	dir := s.pendingDir(repo, id)
	if _, err := os.Stat(dir); err != nil {
		return ErrNotFound
	}
	return writeLimited(filepath.Join(dir, "data"), r, s.maxEntry)
}

// Finalize makes a pending upload an entry if its size is size, then
// evicts least recently used entries beyond the store's limit.
func (s *Store) Finalize(repo, id, key, version string, size int64) (Entry, error) {
	if !validID(id) {
		return Entry{}, ErrNotFound
	}
	data := filepath.Join(s.pendingDir(repo, id), "data")
	fi, err := os.Stat(data)
	if err != nil {
		return Entry{}, fmt.Errorf("finalize cache entry: nothing was uploaded")
	}
	if fi.Size() != size {
		return Entry{}, fmt.Errorf("finalize cache entry: %d bytes were uploaded, not %d", fi.Size(), size)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.exact(repo, key, version); err == nil {
		return Entry{}, ErrExists
	}
	e := Entry{ID: id, Key: key, Version: version, Size: size, Created: s.now().UTC()}
	if err := s.install(repo, e, data); err != nil {
		return Entry{}, err
	}
	s.evict()
	return e, nil
}

func (s *Store) install(repo string, e Entry, data string) error {
	dir := s.repoDir(repo)
	if err := os.Rename(data, filepath.Join(dir, e.ID+".blob")); err != nil {
		return fmt.Errorf("install cache entry: %w", err)
	}
	os.RemoveAll(s.pendingDir(repo, e.ID))
	meta, err := json.Marshal(e)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, e.ID+".json.tmp")
	if err := os.WriteFile(tmp, meta, 0o600); err != nil {
		return fmt.Errorf("install cache entry: %w", err)
	}
	return os.Rename(tmp, filepath.Join(dir, e.ID+".json"))
}

// usage is one entry of the whole store, for eviction.
type usage struct {
	meta, blob string
	size       int64
	used       time.Time
}

// evict removes least recently used entries, across repositories, until
// the store fits its limit. Called with s.mu held.
func (s *Store) evict() {
	var all []usage
	var total int64
	matches, _ := filepath.Glob(filepath.Join(s.dir, "*", "*.json"))
	for _, m := range matches {
		fi, err := os.Stat(m)
		bi, berr := os.Stat(m[:len(m)-len(".json")] + ".blob")
		if err != nil || berr != nil {
			continue
		}
		all = append(all, usage{meta: m, blob: m[:len(m)-len(".json")] + ".blob", size: bi.Size(), used: fi.ModTime()})
		total += bi.Size()
	}
	slices.SortFunc(all, func(a, b usage) int { return a.used.Compare(b.used) })
	for _, u := range all {
		if total <= s.limit {
			return
		}
		if errors.Join(os.Remove(u.meta), os.Remove(u.blob)) == nil {
			total -= u.size
		}
	}
}
