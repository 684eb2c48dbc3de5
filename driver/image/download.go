package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// download brings the source bytes to a local file and checks their sha256.
// It reports whether that file is a temporary one the caller must remove.
func (c *Cache) download(ctx context.Context, src Source, key string) (string, bool, error) {
	if path, ok := localPath(src.URL); ok {
		if src.SHA256 != "" {
			if err := checkSum(path, src.SHA256); err != nil {
				return "", false, err
			}
		}
		return path, false, nil
	}
	part := filepath.Join(c.Dir, "partial", key+".download")
	if err := c.httpGet(ctx, src.URL, part); err != nil {
		removeIfEmpty(part) // keep only what a resume can use
		return "", false, err
	}
	if err := checkSum(part, src.SHA256); err != nil {
		os.Remove(part) // a bad download must not be resumed
		return "", false, err
	}
	return part, true, nil
}

// httpGet fetches url into part, resuming from what part already holds when
// the server honours a Range request.
func (c *Cache) httpGet(ctx context.Context, url, part string) error {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open partial download: %w", err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	client := c.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusPartialContent && have > 0:
		c.Log.Info("resuming image download", "url", url, "offset", have)
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && have > 0:
		return nil // the partial file is already whole
	case resp.StatusCode == http.StatusOK:
		if err := restart(f); err != nil {
			return err
		}
	default:
		return fmt.Errorf("download %s: server answered %s", url, resp.Status)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		return fmt.Errorf("download %s: %w (will resume from here next time)", url, err)
	}
	return f.Sync()
}

func removeIfEmpty(path string) {
	if st, err := os.Stat(path); err == nil && st.Size() == 0 {
		os.Remove(path)
	}
}

func restart(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.Seek(0, io.SeekStart)
	return err
}

// ErrChecksum is returned when an image's bytes do not match its sha256.
var ErrChecksum = errors.New("checksum mismatch")

func checkSum(path, want string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return fmt.Errorf("hash %s: %w", path, err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if got != strings.ToLower(want) {
		return fmt.Errorf("%w: sha256 is %s, the catalog says %s", ErrChecksum, got, strings.ToLower(want))
	}
	return nil
}
