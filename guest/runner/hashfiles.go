package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// hashFiles implements hashFiles(): the SHA-256 of the SHA-256 digests of
// the workspace files matching the patterns (one pattern per line of each
// argument, "!" excluding, "#" a comment; ** spans directories; a pattern
// matching a directory matches the files in it), in path order. Files
// outside the workspace never count. "" when nothing matches.
func (j *Job) hashFiles(args []string) (string, error) {
	follow := false
	var include, exclude []string
	for _, a := range args {
		if a == "--follow-symbolic-links" {
			follow = true
			continue
		}
		for _, p := range strings.Split(a, "\n") {
			p = strings.TrimSpace(p)
			switch {
			case p == "" || strings.HasPrefix(p, "#"):
			case strings.HasPrefix(p, "!"):
				exclude = append(exclude, j.globPattern(p[1:]))
			default:
				include = append(include, j.globPattern(p))
			}
		}
	}
	files, err := matchWorkspace(j.workspace, include, exclude, follow)
	if err != nil || len(files) == 0 {
		return "", err
	}
	total := sha256.New()
	for _, f := range files {
		sum, err := fileDigest(filepath.Join(j.workspace, f))
		if err != nil {
			return "", err
		}
		total.Write(sum)
	}
	return hex.EncodeToString(total.Sum(nil)), nil
}

// globPattern makes a pattern relative to the workspace, slash-separated.
func (j *Job) globPattern(p string) string {
	if filepath.IsAbs(p) {
		if rel, err := filepath.Rel(j.workspace, p); err == nil {
			p = rel
		}
	}
	return path.Clean(filepath.ToSlash(p))
}

func matchWorkspace(root string, include, exclude []string, follow bool) ([]string, error) {
	var out []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable parts are skipped, as the globber does
		}
		if d.IsDir() || (d.Type()&fs.ModeSymlink != 0 && !follow) {
			return nil
		}
		if d.Type()&fs.ModeSymlink != 0 {
			if fi, err := os.Stat(p); err != nil || !fi.Mode().IsRegular() {
				return nil
			}
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if matchAny(include, rel) && !matchAny(exclude, rel) {
			out = append(out, rel)
		}
		return nil
	})
	slices.Sort(out)
	return out, err
}

func matchAny(patterns []string, rel string) bool {
	for _, p := range patterns {
		if matchGlob(strings.Split(p, "/"), strings.Split(rel, "/")) {
			return true
		}
	}
	return false
}

// matchGlob matches path segments against pattern segments; ** matches
// any number of segments, and a pattern that ends early matches the files
// below the directory it names.
func matchGlob(pat, segs []string) bool {
	if len(pat) == 0 {
		return true
	}
	if pat[0] == "**" {
		for i := 0; i <= len(segs); i++ {
			if matchGlob(pat[1:], segs[i:]) {
				return true
			}
		}
		return false
	}
	if len(segs) == 0 {
		return false
	}
	if ok, _ := path.Match(pat[0], segs[0]); !ok {
		return false
	}
	return matchGlob(pat[1:], segs[1:])
}

func fileDigest(p string) ([]byte, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}
