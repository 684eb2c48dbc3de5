package contract

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// The actions the guest agent implements itself (no node in the guests).
const (
	ActionCheckout         = "actions/checkout"
	ActionUploadArtifact   = "actions/upload-artifact"
	ActionDownloadArtifact = "actions/download-artifact"
	ActionCache            = "actions/cache"
	ActionCacheRestore     = "actions/cache/restore"
	ActionCacheSave        = "actions/cache/save"
)

// CacheInputs are the actions/cache inputs the built-in reads; the rest
// of the action's inputs are accepted and have no effect here
// (enableCrossOsArchive, upload-chunk-size, save-always).
var CacheInputs = []string{
	"key", "path", "restore-keys", "fail-on-cache-miss", "lookup-only",
	"enableCrossOsArchive", "upload-chunk-size", "save-always",
}

// UploadArtifactInputs are the actions/upload-artifact@v4 inputs the
// built-in implements.
var UploadArtifactInputs = []string{
	"name", "path", "if-no-files-found", "retention-days", "compression-level", "overwrite", "include-hidden-files",
}

// DownloadArtifactInputs are the actions/download-artifact@v4 inputs the
// built-in implements. github-token, repository and run-id (downloads
// from other runs) are refused when set.
var DownloadArtifactInputs = []string{"name", "path", "pattern", "merge-multiple"}

// BuiltinAction returns which built-in action uses names (one of the
// Action constants), or "" when it names none. The artifact actions need
// major version 4 or later: older ones speak a retired protocol.
func BuiltinAction(uses string) string {
	name, ref, ok := strings.Cut(uses, "@")
	if !ok || ref == "" {
		return ""
	}
	name = strings.ToLower(name)
	switch name {
	case ActionCheckout:
		return name
	case ActionUploadArtifact, ActionDownloadArtifact:
		if legacyArtifactRef(ref) {
			return ""
		}
		return name
	case ActionCache, ActionCacheRestore, ActionCacheSave:
		return name
	}
	return ""
}

// legacyArtifactRef is a v1 to v3 ref of an artifact action.
func legacyArtifactRef(ref string) bool {
	for _, v := range []string{"v1", "v2", "v3"} {
		if ref == v || strings.HasPrefix(ref, v+".") {
			return true
		}
	}
	return false
}

// otherRunInputs are download-artifact inputs for artifacts of other
// runs or repositories, which need the REST API; the built-in refuses them.
var otherRunInputs = []string{"github-token", "repository", "run-id", "artifact-ids"}

// artifactStep checks an artifact action's inputs.
func (v *validator) artifactStep(path string, s *Step, action string) {
	v.noRunFields(path, s)
	allowed := UploadArtifactInputs
	if action == ActionDownloadArtifact {
		allowed = DownloadArtifactInputs
	}
	for _, k := range slices.Sorted(maps.Keys(s.With)) {
		switch {
		case slices.Contains(allowed, k):
		case action == ActionDownloadArtifact && slices.Contains(otherRunInputs, k):
			if s.With[k] != "" {
				v.errorf(path+".with."+k, "input %q of %s is not supported by Solstice's built-in (artifacts of this run only)", k, action)
			}
		default:
			v.errorf(path+".with."+k, "%s has no input %q (supported: %s)", action, k, strings.Join(allowed, ", "))
		}
	}
	if action == ActionUploadArtifact && strings.TrimSpace(s.With["path"]) == "" {
		v.errorf(path+".with.path", "%s needs a path", action)
	}
}

// cacheStep checks an actions/cache step's inputs.
func (v *validator) cacheStep(path string, s *Step, action string) {
	v.noRunFields(path, s)
	for _, k := range slices.Sorted(maps.Keys(s.With)) {
		if !slices.Contains(CacheInputs, k) {
			v.errorf(path+".with."+k, "%s has no input %q (supported: %s)", action, k, strings.Join(CacheInputs, ", "))
		}
	}
	for _, k := range []string{"key", "path"} {
		if strings.TrimSpace(s.With[k]) == "" {
			v.errorf(path+".with."+k, "%s needs a %s", action, k)
		}
	}
}

// UnsupportedActionError is the message for a uses step Solstice cannot run.
func UnsupportedActionError(uses string) string {
	return fmt.Sprintf("action %s is not supported: only run steps, %s, %s@v4, %s@v4 and %s (with /restore and /save) run on Solstice",
		uses, ActionCheckout, ActionUploadArtifact, ActionDownloadArtifact, ActionCache)
}
