// Package cache is the guest's actions/cache client: it talks to a cache
// service of GitHub's v2 Twirp shape (GitHub's own, or the one the
// forgejo shim serves), stores entries as gzip'd tar archives through
// signed blob URLs, and restores them only below the paths the step
// declared.
package cache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/solstice-ci/solstice/guest/results"
)

const servicePath = "twirp/github.actions.results.api.v1.CacheService/"

// ErrExists is the service refusing to save a key it already has (or
// another job is saving now); actions/cache warns and goes on.
var ErrExists = errors.New("cache entry already exists")

// Client talks to one cache service for one job.
type Client struct {
	base  *url.URL
	token string
	tr    *results.Transport
}

// New makes a client for the service at serviceURL with token.
func New(serviceURL, token string, tr *results.Transport) (*Client, error) {
	base, err := results.ParseHTTPURL(serviceURL)
	if err != nil {
		return nil, fmt.Errorf("cache service URL: %w", err)
	}
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
	}
	if token == "" {
		return nil, errors.New("no cache token")
	}
	if tr == nil {
		tr = results.NewTransport()
	}
	return &Client{base: base, token: token, tr: tr}, nil
}

// Version is the entry version actions/cache computes: the SHA-256 of
// the path inputs, the compression method and a salt, joined with "|".
// An entry restores only with the same paths and compression.
func Version(paths []string, compression string) string {
	parts := append(append([]string{}, paths...), compression, "1.0")
	sum := sha256.Sum256([]byte(strings.Join(parts, "|")))
	return hex.EncodeToString(sum[:])
}

type lookupRequest struct {
	Key         string   `json:"key"`
	RestoreKeys []string `json:"restore_keys,omitempty"`
	Version     string   `json:"version"`
}

type lookupAnswer struct {
	OK         bool   `json:"ok"`
	URL        string `json:"signed_download_url"`
	MatchedKey string `json:"matched_key"`
}

// Hit is a found entry.
type Hit struct {
	Key string // the entry's key (the primary key on an exact hit)
	url string
}

// Lookup finds the entry for key, else for the first matching restore
// key; ok is false on a miss.
func (c *Client) Lookup(ctx context.Context, key string, restoreKeys []string, version string) (Hit, bool, error) {
	var a lookupAnswer
	err := c.tr.Call(ctx, c.base, servicePath+"GetCacheEntryDownloadURL", c.token,
		lookupRequest{Key: key, RestoreKeys: restoreKeys, Version: version}, &a)
	if err != nil {
		return Hit{}, false, fmt.Errorf("look up cache: %w", err)
	}
	if !a.OK {
		return Hit{}, false, nil
	}
	if _, err := results.ParseHTTPURL(a.URL); err != nil {
		return Hit{}, false, fmt.Errorf("look up cache: download URL: %w", err)
	}
	if !matches(a.MatchedKey, key, restoreKeys) {
		return Hit{}, false, fmt.Errorf("look up cache: the service matched %q, which is neither the key nor has a restore key's prefix", a.MatchedKey)
	}
	return Hit{Key: a.MatchedKey, url: a.URL}, true, nil
}

// matches checks the service's answer against what was asked.
func matches(got, key string, restoreKeys []string) bool {
	if got == key {
		return true
	}
	for _, p := range restoreKeys {
		if strings.HasPrefix(got, p) {
			return true
		}
	}
	return false
}

// Download spools a hit's archive into a temporary file under tmpDir,
// at most max bytes; the caller removes it.
func (c *Client) Download(ctx context.Context, h Hit, tmpDir string, max int64) (*os.File, error) {
	f, err := os.CreateTemp(tmpDir, "cache-*.tgz")
	if err != nil {
		return nil, fmt.Errorf("download cache: %w", err)
	}
	if _, err := c.tr.Fetch(ctx, h.url, f, max, -1); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("download cache: %w", err)
	}
	return f, nil
}

type saveRequest struct {
	Key       string `json:"key"`
	Version   string `json:"version"`
	SizeBytes string `json:"size_bytes,omitempty"`
}

// Save uploads archive as the entry (key, version) and returns its size.
func (c *Client) Save(ctx context.Context, key, version string, archive io.Reader) (int64, error) {
	var created struct {
		OK  bool   `json:"ok"`
		URL string `json:"signed_upload_url"`
	}
	err := c.tr.Call(ctx, c.base, servicePath+"CreateCacheEntry", c.token, saveRequest{Key: key, Version: version}, &created)
	if results.HasStatus(err, http.StatusConflict) {
		return 0, fmt.Errorf("%w: %v", ErrExists, err)
	}
	if err != nil {
		return 0, fmt.Errorf("reserve cache: %w", err)
	}
	if _, err := results.ParseHTTPURL(created.URL); !created.OK || err != nil {
		return 0, fmt.Errorf("reserve cache: the service gave no usable upload URL")
	}
	size, err := c.tr.UploadBlocks(ctx, created.URL, archive)
	if err != nil {
		return 0, fmt.Errorf("upload cache: %w", err)
	}
	var fin struct {
		OK bool `json:"ok"`
	}
	err = c.tr.Call(ctx, c.base, servicePath+"FinalizeCacheEntryUpload", c.token,
		saveRequest{Key: key, Version: version, SizeBytes: strconv.FormatInt(size, 10)}, &fin)
	if results.HasStatus(err, http.StatusConflict) {
		return 0, fmt.Errorf("%w: %v", ErrExists, err)
	}
	if err != nil || !fin.OK {
		return 0, fmt.Errorf("finalize cache: %v", err)
	}
	return size, nil
}
