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

	"github.com/solstice-ci/solstice/driver/safehttp"
)

// download brings the source bytes to a local file and checks their sha256.
// It reports whether that file is a temporary one the caller must remove.
func (c *Cache) download(ctx context.Context, src Source, key string, progress func(Progress)) (string, bool, error) {
	if path, ok := localPath(src.URL); ok {
		if src.SHA256 != "" {
			if err := checkSum(path, src.SHA256); err != nil {
				return "", false, err
			}
		}
		return path, false, nil
	}
	part := filepath.Join(c.Dir, "partial", key+".download")
	if err := c.httpGet(ctx, src.URL, part, progress); err != nil {
		if errors.Is(err, safehttp.ErrTooLarge) {
			os.Remove(part) // resuming would only run into the cap again
		}
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
func (c *Cache) httpGet(ctx context.Context, url, part string, progress func(Progress)) error {
	f, err := os.OpenFile(part, os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("open partial download: %w", err)
	}
	defer f.Close()
	have, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	resp, err := c.get(ctx, url, have)
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
		have = 0
	default:
		return fmt.Errorf("download %s: server answered %s", url, resp.Status)
	}
	if err := c.copyCapped(f, resp, have, progress); err != nil {
		return fmt.Errorf("download %s: %w", url, err)
	}
	return f.Sync()
}

// get asks for url from byte offset have on.
func (c *Cache) get(ctx context.Context, url string, have int64) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if have > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(have, 10)+"-")
	}
	client := c.HTTP
	if client == nil {
		client = safehttp.NewClient(safehttp.Options{UseProxy: true})
	}
	return client.Do(req)
}

// copyCapped appends the body to f, which already holds have bytes, never
// letting the whole grow past MaxBytes.
func (c *Cache) copyCapped(f *os.File, resp *http.Response, have int64, progress func(Progress)) error {
	body := io.Reader(resp.Body)
	if progress != nil {
		cnt := newCounter(progress, have, sizeOf(resp, have))
		defer cnt.flush()
		body = io.TeeReader(body, cnt)
	}
	if c.MaxBytes > 0 {
		left := c.MaxBytes - have
		if left <= 0 {
			return c.tooLarge(fmt.Errorf("%w: %d bytes are already here", safehttp.ErrTooLarge, have))
		}
		if err := safehttp.CheckLength(resp, left); err != nil {
			return c.tooLarge(err)
		}
		body = safehttp.LimitReader(body, left)
	}
	if _, err := io.Copy(f, body); err != nil {
		if errors.Is(err, safehttp.ErrTooLarge) {
			return c.tooLarge(err)
		}
		return fmt.Errorf("%w (will resume from here next time)", err)
	}
	return nil
}

// sizeOf is the whole image's size as the response gives it (0 when it
// does not): a resumed download's Content-Range names the whole, its
// Content-Length only the rest.
func sizeOf(resp *http.Response, have int64) int64 {
	if _, whole, ok := strings.Cut(resp.Header.Get("Content-Range"), "/"); ok {
		if n, err := strconv.ParseInt(whole, 10, 64); err == nil && n > 0 {
			return n
		}
	}
	if resp.ContentLength > 0 {
		return have + resp.ContentLength
	}
	return 0
}

func (c *Cache) tooLarge(err error) error {
	return fmt.Errorf("%w: the image is larger than max_image_size (%d bytes)", err, c.MaxBytes)
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
