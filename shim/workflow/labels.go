package workflow

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// ignoredLabels may appear in runs-on next to an image label: every
// Solstice runner has them.
var ignoredLabels = []string{"self-hosted", "x64", "amd64"}

// ResolveLabel returns the catalog image a job's runs-on selects. catalog
// maps every image label and alias to its canonical label. runs-on must
// name exactly one image (through any of its labels); "self-hosted", "x64"
// and "amd64" may stand beside it. Any other label is an error, since a
// runner must carry every label a job asks for. Labels ignore case.
func ResolveLabel(runsOn []string, catalog map[string]string) (string, error) {
	image, unknown := "", []string(nil)
	for _, l := range runsOn {
		canon, ok := lookupLabel(catalog, l)
		switch {
		case ok && image != "" && canon != image:
			return "", fmt.Errorf("runs-on [%s] names two images, %q and %q; a job runs on exactly one (available: %s)",
				strings.Join(runsOn, ", "), image, canon, available(catalog))
		case ok:
			image = canon
		case !slices.ContainsFunc(ignoredLabels, func(s string) bool { return strings.EqualFold(s, l) }):
			unknown = append(unknown, l)
		}
	}
	if len(unknown) > 0 {
		return "", fmt.Errorf("runs-on [%s]: no catalog image has label %s (available: %s)",
			strings.Join(runsOn, ", "), quoteList(unknown), available(catalog))
	}
	if image == "" {
		return "", fmt.Errorf("runs-on [%s] names no catalog image (available: %s)", strings.Join(runsOn, ", "), available(catalog))
	}
	return image, nil
}

// labelPos is where the first label of a run that names no image is
// written, or the job's runs-on when it is not written as is.
func labelPos(r Run, catalog map[string]string) Pos {
	for _, l := range r.RunsOn {
		_, known := lookupLabel(catalog, l)
		ignored := slices.ContainsFunc(ignoredLabels, func(s string) bool { return strings.EqualFold(s, l) })
		if pos, ok := r.Job.RunsOn.LabelPos[l]; ok && !known && !ignored {
			return pos
		}
	}
	return r.Job.RunsOn.Pos
}

func lookupLabel(catalog map[string]string, label string) (string, bool) {
	if c, ok := catalog[label]; ok {
		return c, true
	}
	for k, c := range catalog {
		if strings.EqualFold(k, label) {
			return c, true
		}
	}
	return "", false
}

// available lists the canonical labels, each with its aliases:
// "omnios-r151056 (omnios), openindiana-hipster".
func available(catalog map[string]string) string {
	aliases := map[string][]string{}
	for label, canon := range catalog {
		if _, ok := aliases[canon]; !ok {
			aliases[canon] = nil
		}
		if label != canon {
			aliases[canon] = append(aliases[canon], label)
		}
	}
	if len(aliases) == 0 {
		return "none"
	}
	var parts []string
	for _, canon := range slices.Sorted(maps.Keys(aliases)) {
		part := canon
		if a := sortedStrings(aliases[canon]); len(a) > 0 {
			part += " (" + strings.Join(a, ", ") + ")"
		}
		parts = append(parts, part)
	}
	return strings.Join(parts, ", ")
}

func sortedStrings(ss []string) []string {
	slices.Sort(ss)
	return ss
}

// ResolveLabels resolves the image of every run, reporting every run whose
// runs-on selects no single image at the job's runs-on position.
func (w *Workflow) ResolveLabels(runs []Run, catalog map[string]string) ([]string, error) {
	images := make([]string, len(runs))
	var errs Errors
	for i, r := range runs {
		img, err := ResolveLabel(r.RunsOn, catalog)
		if err != nil {
			errs = append(errs, w.errorAt(labelPos(r, catalog), featRunsOn, "run %q: %v", r.Name, err))
			continue
		}
		images[i] = img
	}
	if err := errs.err(); err != nil {
		return nil, err
	}
	return images, nil
}
