package plugin

import (
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/solstice-ci/solstice/driver/safehttp"
)

// taskInputs are the host-side inputs a task config names, checked before
// anything boots. Whoever can dispatch a job writes these fields (the
// bundle comes from dispatch meta), and the driver reads them with the
// client's privileges and hands their bytes to a hostile guest: so a path
// must stay inside the task dir and a URL must be one the operator allows.
type taskInputs struct {
	Plan, Secrets, Bundle string   // resolved paths inside the task dir, or ""
	BundleURL             *url.URL // an allowed http(s) bundle URL, or nil
}

// checkInputs confines the task's plan, secrets and bundle.
func (l *launch) checkInputs() error {
	dir := l.cfg.TaskDir().Dir
	var errs []error
	var err error
	if l.inputs.Plan, err = confine(dir, "plan", l.tc.Plan); err != nil {
		errs = append(errs, err)
	}
	if l.inputs.Secrets, err = confine(dir, "secrets", l.tc.Secrets); err != nil {
		errs = append(errs, err)
	}
	if err := l.checkBundle(dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("task %q config: %w", l.cfg.Name, err)
	}
	return nil
}

// urlRe tells a URL from a path: a scheme, then "://".
var urlRe = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*://`)

// checkBundle accepts a path or file:// URL inside the task dir, or an
// http(s) URL that bundle_hosts allows and that names no denied address.
func (l *launch) checkBundle(dir string) error {
	b := l.tc.Bundle
	if b == "" || !urlRe.MatchString(b) {
		p, err := confine(dir, "bundle", b)
		l.inputs.Bundle = p
		return err
	}
	u, err := url.Parse(b)
	if err != nil {
		return fmt.Errorf("bundle: not a URL: %w", err)
	}
	shown := safehttp.Redact(u)
	switch u.Scheme {
	case "file":
		if u.Host != "" && u.Host != "localhost" {
			return fmt.Errorf("bundle = %q: refused: a file URL must name this host", shown)
		}
		p, err := confinePath(dir, u.Path)
		if err != nil {
			return fmt.Errorf("bundle = %q: %w", shown, err)
		}
		l.inputs.Bundle = p
		return nil
	case "http", "https":
		if err := safehttp.CheckURL(u); err != nil {
			return fmt.Errorf("bundle = %q: refused: %w", shown, err)
		}
		if err := l.conf.limits.bundleHosts.Allow(u); err != nil {
			return fmt.Errorf("bundle = %q: refused: %w (the operator allows hosts with bundle_hosts in the plugin config)", shown, err)
		}
		l.inputs.BundleURL = u
		return nil
	}
	return fmt.Errorf("bundle = %q: refused: scheme %q is not supported (use a path in the task directory, file://, or an http(s) URL that bundle_hosts allows)",
		shown, u.Scheme)
}

// confine resolves a task-config path (see confinePath); its error names
// the field and the path as given.
func confine(taskDir, field, p string) (string, error) {
	if p == "" {
		return "", nil
	}
	real, err := confinePath(taskDir, p)
	if err != nil {
		return "", fmt.Errorf("%s = %q: %w", field, p, err)
	}
	return real, nil
}

// confinePath resolves a path, relative to the task dir or absolute, to a
// regular file inside the task dir with every symlink evaluated. The path
// it returns has no symlinks left, so what is read later is what was
// checked here.
func confinePath(taskDir, p string) (string, error) {
	root, err := filepath.EvalSymlinks(taskDir)
	if err != nil {
		return "", fmt.Errorf("resolve the task directory: %w", err)
	}
	abs := filepath.Clean(p)
	if !filepath.IsAbs(p) {
		abs = filepath.Join(taskDir, p)
	}
	if !within(filepath.Clean(taskDir), abs) && !within(root, abs) {
		if filepath.IsAbs(p) {
			return "", errors.New(`refused: an absolute path outside the task directory (give a path relative to it, such as "local/plan.json")`)
		}
		return "", errors.New("refused: the path leaves the task directory")
	}
	real, err := filepath.EvalSymlinks(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", errors.New("no such file in the task directory")
	case err != nil:
		return "", err
	case !within(root, real):
		return "", fmt.Errorf("refused: it leads through a symlink to %s, outside the task directory", real)
	}
	st, err := os.Stat(real)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", errors.New("refused: not a regular file")
	}
	return real, nil
}

// within reports whether p is dir or below it; both must be clean.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}
