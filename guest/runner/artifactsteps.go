package runner

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/guest/artifact"
)

// uploadArtifact is the built-in actions/upload-artifact@v4: it zips the
// files its path input finds and uploads them with the forge's artifact
// v4 API, with outputs artifact-id, artifact-url and artifact-digest.
// overwrite=false refuses a name this run already has; with true the
// forge replaces it (Gitea reuses the record on CreateArtifact).
func (j *Job) uploadArtifact(ctx context.Context, s *stepRun) error {
	in, err := j.actionInputs(s, uploadDefaults)
	if err != nil {
		return err
	}
	up := artifact.Upload{Name: in["name"]}
	if up.Level, err = intInput(in, "compression-level", 0, 9); err != nil {
		return err
	}
	if up.RetentionDays, err = intInput(in, "retention-days", 0, 90); err != nil {
		return err
	}
	if err := artifact.CheckName(up.Name); err != nil {
		return err
	}
	if up.Files, err = uploadSearch(j.workspace, j.home(), in["path"], isTrue(in["include-hidden-files"])); err != nil {
		return fmt.Errorf("search %q: %w", in["path"], err)
	}
	if len(up.Files) == 0 {
		return j.noFilesFound(s, in)
	}
	j.system(s.index, fmt.Sprintf("With the provided path, there will be %d file(s) uploaded", len(up.Files)))
	c, err := j.artifactClient(s)
	if err != nil {
		return err
	}
	if !isTrue(in["overwrite"]) {
		if err := refuseExisting(ctx, c, up.Name); err != nil {
			return err
		}
	}
	res, err := c.Upload(ctx, up)
	if err != nil {
		return err
	}
	j.reportUpload(s, up.Name, res)
	return nil
}

func (j *Job) noFilesFound(s *stepRun, in map[string]string) error {
	msg := fmt.Sprintf("No files were found with the provided path: %s. No artifacts will be uploaded.", in["path"])
	switch strings.ToLower(in["if-no-files-found"]) {
	case "error":
		return fmt.Errorf("%s", msg)
	case "ignore":
		j.system(s.index, msg)
	case "warn":
		j.warning(s.index, msg)
	default:
		return fmt.Errorf("input if-no-files-found: want warn, error or ignore, got %q", in["if-no-files-found"])
	}
	return nil
}

func refuseExisting(ctx context.Context, c *artifact.Client, name string) error {
	have, err := c.List(ctx, name)
	if err != nil {
		return err
	}
	if len(have) > 0 {
		return fmt.Errorf("an artifact named %q already exists in this workflow run; set overwrite: true to replace it", name)
	}
	return nil
}

func (j *Job) reportUpload(s *stepRun, name string, res artifact.Uploaded) {
	j.system(s.index, fmt.Sprintf("Artifact %s has been successfully uploaded! Final size is %d bytes. Artifact ID is %d", name, res.Size, res.ID))
	j.system(s.index, "Artifact "+name+" SHA256 digest is "+res.Digest)
	s.setOutput("artifact-id", strconv.FormatInt(res.ID, 10))
	s.setOutput("artifact-digest", res.Digest)
	if u := j.artifactURL(res); u != "" {
		j.system(s.index, "Artifact download URL: "+u)
		s.setOutput("artifact-url", u)
	}
}

// downloadArtifact is the built-in actions/download-artifact@v4 for
// artifacts of this run: one by name into path, or all (matching pattern)
// each into path/NAME, or all into path with merge-multiple. Output:
// download-path.
func (j *Job) downloadArtifact(ctx context.Context, s *stepRun) error {
	in, err := j.actionInputs(s, downloadDefaults)
	if err != nil {
		return err
	}
	c, err := j.artifactClient(s)
	if err != nil {
		return err
	}
	dest := j.localPath(in["path"])
	want, err := j.artifactsToDownload(ctx, c, in)
	if err != nil {
		return err
	}
	for _, a := range want {
		target := dest
		if in["name"] == "" && !isTrue(in["merge-multiple"]) {
			target = filepath.Join(dest, a.Name) // names are checked: no separators
		}
		j.system(s.index, fmt.Sprintf("Downloading artifact %s (%d bytes) to %s", a.Name, a.Size, target))
		if err := c.Download(ctx, a, target, j.layout.Temp, artifact.DefaultLimits); err != nil {
			return err
		}
	}
	j.system(s.index, fmt.Sprintf("Total of %d artifact(s) downloaded", len(want)))
	s.setOutput("download-path", dest)
	return nil
}

func (j *Job) artifactsToDownload(ctx context.Context, c *artifact.Client, in map[string]string) ([]artifact.Artifact, error) {
	list, err := c.List(ctx, in["name"])
	if err != nil {
		return nil, err
	}
	if in["name"] != "" {
		if len(list) == 0 {
			return nil, fmt.Errorf("Unable to download artifact(s): Artifact not found for name: %s", in["name"])
		}
		return list[:1], nil
	}
	var out []artifact.Artifact
	for _, a := range list {
		ok, err := matchName(in["pattern"], a.Name)
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b artifact.Artifact) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}
