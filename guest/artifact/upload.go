package artifact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/solstice-ci/solstice/guest/results"
)

// Upload is one artifact to upload.
type Upload struct {
	Name  string
	Files []File
	// Level is the zlib level, 0 (store) to 9; the action's default is 6.
	Level int
	// RetentionDays, when positive, asks the forge to keep the artifact
	// that long.
	RetentionDays int
}

// Uploaded is what the forge made of an upload.
type Uploaded struct {
	ID     int64
	Size   int64  // bytes of the zip
	Digest string // hex SHA-256 of the zip
}

type createRequest struct {
	RunID     string  `json:"workflow_run_backend_id"`
	JobID     string  `json:"workflow_job_run_backend_id"`
	Name      string  `json:"name"`
	ExpiresAt *string `json:"expires_at,omitempty"`
	Version   int     `json:"version"`
}

type createAnswer struct {
	OK        bool   `json:"ok"`
	UploadURL string `json:"signed_upload_url"`
}

type finalizeRequest struct {
	RunID string `json:"workflow_run_backend_id"`
	JobID string `json:"workflow_job_run_backend_id"`
	Name  string `json:"name"`
	Size  string `json:"size"`
	Hash  string `json:"hash"`
}

type finalizeAnswer struct {
	OK bool      `json:"ok"`
	ID int64JSON `json:"artifact_id"`
}

// Upload zips u.Files and uploads them as artifact u.Name. It replaces
// an artifact of the same name of this run, as the forge does.
func (c *Client) Upload(ctx context.Context, u Upload) (Uploaded, error) {
	if err := CheckName(u.Name); err != nil {
		return Uploaded{}, err
	}
	if u.Level < 0 || u.Level > 9 {
		return Uploaded{}, fmt.Errorf("compression level %d is not between 0 and 9", u.Level)
	}
	target, err := c.create(ctx, u)
	if err != nil {
		return Uploaded{}, err
	}
	size, digest, err := c.sendZip(ctx, target, u)
	if err != nil {
		return Uploaded{}, fmt.Errorf("upload artifact %q: %w", u.Name, err)
	}
	var fa finalizeAnswer
	err = c.call(ctx, "FinalizeArtifact", finalizeRequest{RunID: c.ids.run, JobID: c.ids.job, Name: u.Name,
		Size: strconv.FormatInt(size, 10), Hash: "sha256:" + digest}, &fa)
	if err != nil {
		return Uploaded{}, fmt.Errorf("finalize artifact %q: %w", u.Name, err)
	}
	if !fa.OK {
		return Uploaded{}, fmt.Errorf("finalize artifact %q: the forge did not accept it", u.Name)
	}
	return Uploaded{ID: int64(fa.ID), Size: size, Digest: digest}, nil
}

func (c *Client) create(ctx context.Context, u Upload) (string, error) {
	req := createRequest{RunID: c.ids.run, JobID: c.ids.job, Name: u.Name, Version: 4}
	if u.RetentionDays > 0 {
		exp := time.Now().UTC().AddDate(0, 0, u.RetentionDays).Format(time.RFC3339)
		req.ExpiresAt = &exp
	}
	var ca createAnswer
	if err := c.call(ctx, "CreateArtifact", req, &ca); err != nil {
		return "", fmt.Errorf("create artifact %q: %w", u.Name, err)
	}
	if !ca.OK {
		return "", fmt.Errorf("create artifact %q: the forge refused it", u.Name)
	}
	if _, err := results.ParseHTTPURL(ca.UploadURL); err != nil {
		return "", fmt.Errorf("create artifact %q: upload URL: %w", u.Name, err)
	}
	return ca.UploadURL, nil
}

// sendZip streams the zip of u's files to the signed URL in blocks and
// commits the block list; it returns the zip's size and SHA-256.
func (c *Client) sendZip(ctx context.Context, target string, u Upload) (int64, string, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := writeZip(pw, u.Files, u.Level)
		pw.CloseWithError(err)
		done <- err
	}()
	h := sha256.New()
	size, err := c.tr.UploadBlocks(ctx, target, io.TeeReader(pr, h))
	pr.CloseWithError(errors.New("upload stopped")) // unblocks the zip writer on failure
	if zerr := <-done; zerr != nil && (err == nil || errors.Is(err, zerr)) {
		err = fmt.Errorf("make zip: %w", zerr)
	}
	if err != nil {
		return 0, "", err
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// CheckName refuses artifact names the official action refuses, and the
// two that would not stay below a download's path as path/NAME.
func CheckName(name string) error {
	if name == "" {
		return errors.New("artifact name is empty")
	}
	if len(name) > 256 {
		return errors.New("artifact name is longer than 256 bytes")
	}
	if name == "." || name == ".." {
		return fmt.Errorf("artifact name %q is not allowed", name) // it would name a directory above path/NAME
	}
	if i := strings.IndexAny(name, "\":<>|*?\r\n\\/\x00"); i >= 0 {
		return fmt.Errorf("artifact name %q contains %q, which is not allowed", name, name[i])
	}
	return nil
}
