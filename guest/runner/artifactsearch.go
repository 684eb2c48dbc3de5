package runner

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/solstice-ci/solstice/guest/artifact"
)

// maxUploadFiles bounds one upload's file list (the official action warns
// far earlier; this only stops a runaway glob from exhausting memory).
const maxUploadFiles = 500000

// uploadPattern is one line of upload-artifact's path input.
type uploadPattern struct {
	segs    []string // absolute, cleaned, split at "/"
	literal int      // how many leading segments hold no glob characters
}

// uploadSearch finds the files upload-artifact would upload for its path
// input (one pattern per line, "!" excluding, "#" a comment, ** spanning
// directories, a directory meaning everything below it), relative to the
// workspace. Hidden files and directories (a name starting with ".")
// below a search path count only with includeHidden. Like the official
// action, the zip's root is the least common ancestor of the patterns'
// search paths, or a lone file's directory when the pattern names just
// that file; symlinks to files are followed, symlinked directories not.
func uploadSearch(workspace, home, spec string, includeHidden bool) ([]artifact.File, error) {
	var include, exclude []uploadPattern
	for _, line := range strings.Split(spec, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "!"):
			exclude = append(exclude, newUploadPattern(workspace, home, line[1:]))
		default:
			include = append(include, newUploadPattern(workspace, home, line))
		}
	}
	found := map[string]bool{}
	for _, p := range include {
		if err := p.walk(found, exclude, includeHidden); err != nil {
			return nil, err
		}
	}
	return zipNames(found, include)
}

// newUploadPattern resolves p: ~/ is home, a relative path is below the
// workspace.
func newUploadPattern(workspace, home, p string) uploadPattern {
	p = strings.TrimSpace(p)
	if strings.HasPrefix(p, "~/") && home != "" {
		p = filepath.Join(home, p[2:])
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(workspace, p)
	}
	segs := strings.Split(filepath.ToSlash(filepath.Clean(p)), "/")
	n := 0
	for n < len(segs) && !strings.ContainsAny(segs[n], "*?[") {
		n++
	}
	return uploadPattern{segs: segs, literal: n}
}

// searchPath is the pattern's literal prefix, where its walk starts.
func (p uploadPattern) searchPath() string {
	return filepath.FromSlash(strings.Join(p.segs[:p.literal], "/"))
}

func (p uploadPattern) walk(found map[string]bool, exclude []uploadPattern, hidden bool) error {
	root := p.searchPath()
	return filepath.WalkDir(root, func(file string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // a missing search path finds nothing, as the globber does
		}
		if !hidden && file != root && strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() || !isRegularOrLinkToRegular(file, d) {
			return nil
		}
		segs := strings.Split(filepath.ToSlash(file), "/")
		if !matchGlob(p.segs, segs) || slices.ContainsFunc(exclude, func(x uploadPattern) bool { return matchGlob(x.segs, segs) }) {
			return nil
		}
		if len(found) >= maxUploadFiles {
			return errTooManyFiles
		}
		found[file] = true
		return nil
	})
}

var errTooManyFiles = fmt.Errorf("more than %d files match the path", maxUploadFiles)

func isRegularOrLinkToRegular(file string, d fs.DirEntry) bool {
	if d.Type().IsRegular() {
		return true
	}
	if d.Type()&fs.ModeSymlink == 0 {
		return false
	}
	fi, err := os.Stat(file)
	return err == nil && fi.Mode().IsRegular()
}

// zipNames names the found files relative to the upload's root.
func zipNames(found map[string]bool, include []uploadPattern) ([]artifact.File, error) {
	if len(found) == 0 {
		return nil, nil
	}
	files := make([]string, 0, len(found))
	for f := range found {
		files = append(files, f)
	}
	slices.Sort(files)
	root := commonRoot(include)
	if len(files) == 1 && len(include) == 1 && include[0].searchPath() == files[0] {
		root = filepath.Dir(files[0])
	}
	out := make([]artifact.File, 0, len(files))
	for _, f := range files {
		rel, err := filepath.Rel(root, f)
		if err != nil {
			return nil, err
		}
		out = append(out, artifact.File{Name: filepath.ToSlash(rel), Path: f})
	}
	return out, nil
}

// commonRoot is the least common ancestor of the patterns' search paths.
func commonRoot(include []uploadPattern) string {
	common := include[0].segs[:include[0].literal]
	for _, p := range include[1:] {
		n := 0
		for n < len(common) && n < p.literal && common[n] == p.segs[n] {
			n++
		}
		common = common[:n]
	}
	if len(common) <= 1 {
		return string(filepath.Separator)
	}
	return filepath.FromSlash(strings.Join(common, "/"))
}
