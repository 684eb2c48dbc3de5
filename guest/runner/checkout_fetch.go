package runner

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The all-history refspecs of actions/checkout (ref-helper.ts).
const (
	headsRefspec = "+refs/heads/*:refs/remotes/origin/*"
	tagsRefspec  = "+refs/tags/*:refs/tags/*"
)

// target is what gets checked out: ref, created as a local branch at
// start when start is set (`git checkout -B ref start`).
type target struct{ ref, start string }

// fetch fetches what the checkout needs and says what to check out.
func (g *gitRun) fetch() (target, error) {
	if g.spec.bundle != "" {
		return g.fetchBundle()
	}
	if g.spec.ref == "" && g.spec.sha == "" {
		ref, err := g.defaultBranch()
		if err != nil {
			return target{}, err
		}
		g.spec.ref = ref
	}
	refspecs := refspecsFor(g.spec.ref, g.spec.sha, g.spec.depth == 0)
	args := []string{"-c", "protocol.version=2", "fetch"}
	if !g.spec.fetchTags && !slices.Contains(refspecs, tagsRefspec) {
		args = append(args, "--no-tags")
	}
	args = append(args, "--prune", "--no-recurse-submodules")
	if g.spec.progress {
		args = append(args, "--progress")
	}
	if g.spec.depth > 0 {
		args = append(args, "--depth="+strconv.Itoa(g.spec.depth))
	}
	args = append(append(args, "origin"), refspecs...)
	if err := g.run(g.spec.dir, args...); err != nil {
		return target{}, err
	}
	return g.checkoutTarget()
}

// defaultBranch asks the remote where its HEAD points (the repository's
// default branch), which actions/checkout gets from the API.
func (g *gitRun) defaultBranch() (string, error) {
	out, err := g.output("ls-remote", "--symref", "origin", "HEAD")
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(out, "\n") {
		if ref, ok := strings.CutPrefix(line, "ref: "); ok {
			return strings.TrimSuffix(ref, "\tHEAD"), nil
		}
	}
	return "", fmt.Errorf("cannot find the default branch of %s", g.spec.url)
}

// refspecsFor is actions/checkout's getRefSpec / getRefSpecForAllHistory.
func refspecsFor(ref, sha string, allHistory bool) []string {
	upper := strings.ToUpper(ref)
	if allHistory {
		out := []string{headsRefspec, tagsRefspec}
		if strings.HasPrefix(upper, "REFS/PULL/") {
			src := sha
			if src == "" {
				src = ref
			}
			out = append(out, "+"+src+":refs/remotes/pull/"+ref[len("refs/pull/"):])
		}
		return out
	}
	src := ref
	if sha != "" {
		src = sha
	}
	switch {
	case strings.HasPrefix(upper, "REFS/HEADS/"):
		return []string{"+" + src + ":refs/remotes/origin/" + ref[len("refs/heads/"):]}
	case strings.HasPrefix(upper, "REFS/PULL/"):
		return []string{"+" + src + ":refs/remotes/pull/" + ref[len("refs/pull/"):]}
	case strings.HasPrefix(upper, "REFS/TAGS/"):
		return []string{"+" + src + ":" + ref}
	case sha != "":
		return []string{sha}
	case !strings.HasPrefix(upper, "REFS/"):
		return []string{"+refs/heads/" + ref + "*:refs/remotes/origin/" + ref + "*", "+refs/tags/" + ref + "*:refs/tags/" + ref + "*"}
	}
	return []string{"+" + ref + ":" + ref}
}

// checkoutTarget is actions/checkout's getCheckoutInfo.
func (g *gitRun) checkoutTarget() (target, error) {
	ref, upper := g.spec.ref, strings.ToUpper(g.spec.ref)
	switch {
	case ref == "":
		return target{ref: g.spec.sha}, nil
	case strings.HasPrefix(upper, "REFS/HEADS/"):
		b := ref[len("refs/heads/"):]
		return target{ref: b, start: "refs/remotes/origin/" + b}, nil
	case strings.HasPrefix(upper, "REFS/PULL/"):
		return target{ref: "refs/remotes/pull/" + ref[len("refs/pull/"):]}, nil
	case strings.HasPrefix(upper, "REFS/"):
		return target{ref: ref}, nil
	}
	if g.refExists("refs/remotes/origin/" + ref) {
		return target{ref: ref, start: "refs/remotes/origin/" + ref}, nil
	}
	if g.refExists("refs/tags/" + ref) {
		return target{ref: "refs/tags/" + ref}, nil
	}
	return target{}, fmt.Errorf("A branch or tag with the name '%s' could not be found", ref)
}

func (g *gitRun) refExists(ref string) bool {
	_, err := g.output("rev-parse", "--verify", "--quiet", ref+"^{commit}")
	return err == nil
}

func (g *gitRun) switchTo(t target) error {
	args := []string{"checkout"}
	if g.spec.progress {
		args = append(args, "--progress")
	}
	args = append(args, "--force")
	if t.start != "" {
		args = append(args, "-B", t.ref, t.start)
	} else {
		args = append(args, t.ref)
	}
	return g.run(g.spec.dir, args...)
}

// fetchBundle fetches every branch and tag of the bundle (bundles are
// small, local and cannot be fetched shallowly), then picks the sha, or
// the ref, or the bundle's HEAD.
func (g *gitRun) fetchBundle() (target, error) {
	heads, err := g.output("bundle", "list-heads", g.spec.bundle)
	if err != nil {
		return target{}, err
	}
	var refspecs []string
	for _, line := range strings.Split(heads, "\n") {
		_, ref, ok := strings.Cut(strings.TrimSpace(line), " ")
		if dst := bundleDest(ref); ok && dst != "" {
			refspecs = append(refspecs, "+"+ref+":"+dst)
		}
	}
	if len(refspecs) == 0 {
		return target{}, fmt.Errorf("the bundle %s has no branches or tags", g.spec.bundle)
	}
	if err := g.run(g.spec.dir, append([]string{"fetch", "--no-tags", "--update-head-ok", g.spec.bundle}, refspecs...)...); err != nil {
		return target{}, err
	}
	return g.bundleTarget()
}

func bundleDest(ref string) string {
	switch {
	case ref == "HEAD":
		return "refs/remotes/origin/HEAD"
	case strings.HasPrefix(ref, "refs/heads/"):
		return "refs/remotes/origin/" + ref[len("refs/heads/"):]
	case strings.HasPrefix(ref, "refs/tags/"):
		return ref
	case strings.HasPrefix(ref, "refs/pull/"):
		return "refs/remotes/pull/" + ref[len("refs/pull/"):]
	}
	return ""
}

func (g *gitRun) bundleTarget() (target, error) {
	ref, sha := g.spec.ref, g.spec.sha
	switch {
	case sha != "" && strings.HasPrefix(ref, "refs/heads/"):
		return target{ref: ref[len("refs/heads/"):], start: sha}, nil
	case sha != "":
		return target{ref: sha}, nil
	case ref != "":
		return g.checkoutTarget()
	}
	head, err := g.output("rev-parse", "refs/remotes/origin/HEAD")
	if err != nil {
		return target{}, fmt.Errorf("the bundle %s has no HEAD and the plan names no commit", g.spec.bundle)
	}
	g.spec.sha = head
	return target{ref: head}, nil
}
