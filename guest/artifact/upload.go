package artifact

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
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
	UploadURL string `json:"signedUploadUrl"`
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
	ID int64JSON `json:"artifactId"`
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
	if _, err := parseHTTPURL(ca.UploadURL); err != nil {
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
	size, ids, err := c.putBlocks(ctx, target, io.TeeReader(pr, h))
	pr.CloseWithError(errors.New("upload stopped")) // unblocks the zip writer on failure
	if zerr := <-done; zerr != nil && err == nil {
		err = zerr
	}
	if err != nil {
		return 0, "", err
	}
	if err := c.putBlockList(ctx, target, ids); err != nil {
		return 0, "", err
	}
	return size, hex.EncodeToString(h.Sum(nil)), nil
}

// putBlocks sends r in blocks of c.blockSize from one reused buffer.
func (c *Client) putBlocks(ctx context.Context, target string, r io.Reader) (int64, []string, error) {
	prefix, err := blockPrefix()
	if err != nil {
		return 0, nil, err
	}
	buf := make([]byte, c.blockSize)
	var ids []string
	var size int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if len(ids) == maxBlocks {
				return 0, nil, fmt.Errorf("artifact needs more than %d blocks of %d bytes", maxBlocks, c.blockSize)
			}
			id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", prefix, len(ids)))
			u := target + "&comp=block&blockid=" + url.QueryEscape(id)
			if err := c.put(ctx, u, buf[:n], "application/octet-stream"); err != nil {
				return 0, nil, fmt.Errorf("block %d: %w", len(ids), err)
			}
			ids = append(ids, id)
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return size, ids, nil
		}
		if rerr != nil {
			return 0, nil, fmt.Errorf("make zip: %w", rerr)
		}
	}
}

// blockPrefix makes block ids unique to this upload, so a retried upload
// of the same artifact never commits a stale block. Ids have equal
// lengths, as Azure requires.
func blockPrefix() (string, error) {
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("make block ids: %w", err)
	}
	return hex.EncodeToString(b), nil
}

type blockList struct {
	XMLName xml.Name `xml:"BlockList"`
	Latest  []string `xml:"Latest"`
}

func (c *Client) putBlockList(ctx context.Context, target string, ids []string) error {
	body, err := xml.Marshal(blockList{Latest: ids})
	if err != nil {
		return fmt.Errorf("encode block list: %w", err)
	}
	body = append([]byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`), body...)
	if err := c.put(ctx, target+"&comp=blocklist", body, "text/plain; charset=UTF-8"); err != nil {
		return fmt.Errorf("commit block list: %w", err)
	}
	return nil
}

// put sends one body to a signed URL, retrying transient failures. The
// runtime token is never sent: signed URLs carry their own authority and
// may point at another host (GitHub's blob storage).
func (c *Client) put(ctx context.Context, u string, body []byte, ctype string) error {
	return c.retry(ctx, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
		if err != nil {
			return false, err
		}
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("x-ms-blob-type", "BlockBlob")
		resp, err := c.http.Do(req)
		if err != nil {
			return true, err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return false, nil
		}
		err = &StatusError{Op: "PUT " + redactURL(u), Code: resp.StatusCode, Msg: twirpMessage(msg)}
		return transient(resp.StatusCode), err
	})
}

// transient says whether a status is worth retrying.
func transient(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}

// retry runs try until it succeeds, fails for good, or c.retries retries
// are spent, waiting c.backoff, doubled each time, in between.
func (c *Client) retry(ctx context.Context, try func() (retryable bool, err error)) error {
	wait := c.backoff
	for attempt := 0; ; attempt++ {
		again, err := try()
		if err == nil || !again || attempt >= c.retries || ctx.Err() != nil {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %v)", ctx.Err(), err)
		case <-t.C:
		}
		wait *= 2
	}
}

// CheckName refuses artifact names the official action refuses.
func CheckName(name string) error {
	if name == "" {
		return errors.New("artifact name is empty")
	}
	if len(name) > 256 {
		return errors.New("artifact name is longer than 256 bytes")
	}
	if i := strings.IndexAny(name, "\":<>|*?\r\n\\/\x00"); i >= 0 {
		return fmt.Errorf("artifact name %q contains %q, which is not allowed", name, name[i])
	}
	return nil
}
