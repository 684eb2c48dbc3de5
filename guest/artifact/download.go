package artifact

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/solstice-ci/solstice/guest/results"
)

// Artifact is one finalized artifact of the run.
type Artifact struct {
	ID        int64
	Name      string
	Size      int64
	CreatedAt time.Time
}

type listRequest struct {
	RunID      string  `json:"workflow_run_backend_id"`
	JobID      string  `json:"workflow_job_run_backend_id"`
	NameFilter *string `json:"name_filter,omitempty"`
}

type listAnswer struct {
	Artifacts []struct {
		ID        int64JSON `json:"database_id"`
		Name      string    `json:"name"`
		Size      int64JSON `json:"size"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"artifacts"`
}

type urlRequest struct {
	RunID string `json:"workflow_run_backend_id"`
	JobID string `json:"workflow_job_run_backend_id"`
	Name  string `json:"name"`
}

type urlAnswer struct {
	URL string `json:"signed_url"`
}

// maxListed bounds how many artifacts a listing may name.
const maxListed = 10000

// List returns the run's finalized artifacts, only the one named name
// when name is not empty.
func (c *Client) List(ctx context.Context, name string) ([]Artifact, error) {
	req := listRequest{RunID: c.ids.run, JobID: c.ids.job}
	if name != "" {
		req.NameFilter = &name
	}
	var la listAnswer
	if err := c.call(ctx, "ListArtifacts", req, &la); err != nil {
		return nil, fmt.Errorf("list artifacts: %w", err)
	}
	if len(la.Artifacts) > maxListed {
		return nil, fmt.Errorf("list artifacts: the forge named %d, more than %d", len(la.Artifacts), maxListed)
	}
	out := make([]Artifact, 0, len(la.Artifacts))
	for _, a := range la.Artifacts {
		if err := CheckName(a.Name); err != nil {
			return nil, fmt.Errorf("list artifacts: %w", err)
		}
		if a.Size < 0 {
			return nil, fmt.Errorf("list artifacts: %q has size %d", a.Name, a.Size)
		}
		if name != "" && a.Name != name {
			continue // a forge that ignores the filter must not hand us others
		}
		out = append(out, Artifact{ID: int64(a.ID), Name: a.Name, Size: int64(a.Size), CreatedAt: a.CreatedAt})
	}
	return out, nil
}

// Limits bound what a download may write.
type Limits struct {
	MaxZip   int64 // bytes of the zip
	MaxBytes int64 // bytes extracted
	MaxFiles int   // zip entries
}

// DefaultLimits are generous for build results and still finite.
var DefaultLimits = Limits{MaxZip: 10 << 30, MaxBytes: 20 << 30, MaxFiles: 500000}

// Download fetches artifact a and extracts it into dest, which it
// creates. The zip is spooled to a temporary file under tmpDir.
func (c *Client) Download(ctx context.Context, a Artifact, dest, tmpDir string, lim Limits) error {
	var ua urlAnswer
	if err := c.call(ctx, "GetSignedArtifactURL", urlRequest{RunID: c.ids.run, JobID: c.ids.job, Name: a.Name}, &ua); err != nil {
		return fmt.Errorf("download artifact %q: %w", a.Name, err)
	}
	if _, err := results.ParseHTTPURL(ua.URL); err != nil {
		return fmt.Errorf("download artifact %q: signed URL: %w", a.Name, err)
	}
	spool, err := os.CreateTemp(tmpDir, "artifact-*.zip")
	if err != nil {
		return fmt.Errorf("download artifact %q: %w", a.Name, err)
	}
	defer os.Remove(spool.Name())
	defer spool.Close()
	if err := c.fetch(ctx, ua.URL, spool, a, lim.MaxZip); err != nil {
		return fmt.Errorf("download artifact %q: %w", a.Name, err)
	}
	if err := Extract(spool, dest, lim); err != nil {
		return fmt.Errorf("extract artifact %q: %w", a.Name, err)
	}
	return nil
}

// fetch GETs the signed URL into spool and checks the size against the
// listing.
func (c *Client) fetch(ctx context.Context, u string, spool *os.File, a Artifact, maxZip int64) error {
	if a.Size > maxZip {
		return fmt.Errorf("it is %d bytes, more than the limit of %d", a.Size, maxZip)
	}
	want := a.Size
	if want <= 0 {
		want = -1
	}
	_, err := c.tr.Fetch(ctx, u, spool, maxZip, want)
	return err
}

// ErrUnsafe marks a zip entry that would escape or subvert the
// destination.
var ErrUnsafe = errors.New("unsafe zip entry")
