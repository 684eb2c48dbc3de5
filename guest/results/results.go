// Package results is the transport the guest's built-in artifact and
// cache actions share with the forge's results service: Twirp JSON calls
// with the job's token, and signed blob URLs that take Azure-style block
// uploads (comp=block / comp=blocklist, as Gitea and Azure Blob storage
// accept) and plain GETs. Answers are bounded, URLs must be http(s), the
// token never goes to a signed URL, and transfers retry transient
// failures with backoff while holding one block in memory.
package results

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

const (
	// maxAnswer bounds a Twirp answer.
	maxAnswer = 4 << 20
	// DefaultBlockSize is the upload block: the only buffer an upload
	// holds, whatever its size.
	DefaultBlockSize = 8 << 20
	// maxBlocks is Azure's limit per blob, which Gitea shares in practice.
	maxBlocks = 50000
)

// Transport holds the HTTP client and the transfer settings.
type Transport struct {
	HTTP      *http.Client
	BlockSize int
	Retries   int
	Backoff   time.Duration // first wait, doubled after each retry
}

// NewTransport has the defaults: a 10 min timeout per request (a Twirp
// call or one block), 8 MiB blocks, 5 retries from 1 s.
func NewTransport() *Transport {
	return &Transport{HTTP: &http.Client{Timeout: 10 * time.Minute}, BlockSize: DefaultBlockSize, Retries: 5, Backoff: time.Second}
}

// ParseHTTPURL accepts only absolute http(s) URLs: the forge's answers
// choose where we send data, and nothing but HTTP may be reached.
func ParseHTTPURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("%q is not an http(s) URL", RedactURL(s))
	}
	return u, nil
}

// RedactURL drops a URL's query, where signed URLs keep their signature.
func RedactURL(s string) string {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i] + "?…"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Call posts one Twirp JSON request to base/path and decodes the answer
// into out.
func (t *Transport) Call(ctx context.Context, base *url.URL, path, token string, in, out any) error {
	method := path[strings.LastIndexByte(path, '/')+1:]
	body, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode %s request: %w", method, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base.JoinPath(path).String(), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("make %s request: %w", method, err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := t.HTTP.Do(req)
	if err != nil {
		return fmt.Errorf("call %s: %w", method, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return fmt.Errorf("read %s answer: %w", method, err)
	}
	if len(data) > maxAnswer {
		return fmt.Errorf("%s answer is larger than %d bytes", method, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return &StatusError{Op: method, Code: resp.StatusCode, Msg: Message(data)}
	}
	if data, err = ProtoNames(data); err == nil {
		err = json.Unmarshal(data, out)
	}
	if err != nil {
		return fmt.Errorf("decode %s answer: %w", method, err)
	}
	return nil
}

// ProtoNames rewrites a protojson answer's object keys to the proto field
// names (signedUploadUrl becomes signed_upload_url). A Twirp server may
// answer in either: Gitea writes lowerCamelCase, GitHub's results service
// the proto names, and protojson readers, like the official toolkit's,
// accept both. Answers are then decoded into structs tagged with proto
// names only.
func ProtoNames(data []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	return json.Marshal(snakeKeys(v))
}

func snakeKeys(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[snakeCase(k)] = snakeKeys(e)
		}
		return out
	case []any:
		for i := range t {
			t[i] = snakeKeys(t[i])
		}
	}
	return v
}

// snakeCase turns a lowerCamelCase JSON name into its proto name; proto
// names pass unchanged.
func snakeCase(k string) string {
	var b strings.Builder
	for _, r := range k {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// StatusError is a server's refusal.
type StatusError struct {
	Op   string
	Code int
	Msg  string
}

func (e *StatusError) Error() string {
	if e.Msg == "" {
		return fmt.Sprintf("%s: HTTP %d", e.Op, e.Code)
	}
	return fmt.Sprintf("%s: HTTP %d: %s", e.Op, e.Code, e.Msg)
}

// HasStatus tells whether err is a refusal with that HTTP status.
func HasStatus(err error, code int) bool {
	var se *StatusError
	return errors.As(err, &se) && se.Code == code
}

// Message is the msg of a Twirp error body, or the body's first line,
// printable and short: it ends up in the step's log.
func Message(data []byte) string {
	var te struct {
		Msg string `json:"msg"`
	}
	s := string(data)
	if json.Unmarshal(data, &te) == nil && te.Msg != "" {
		s = te.Msg
	}
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}

// Int64 is a protojson int64: a JSON string or number.
type Int64 int64

// UnmarshalJSON implements json.Unmarshaler.
func (n *Int64) UnmarshalJSON(b []byte) error {
	v, err := strconv.ParseInt(strings.Trim(string(b), `"`), 10, 64)
	if err != nil {
		return fmt.Errorf("not an int64: %.40s", b)
	}
	*n = Int64(v)
	return nil
}

// UploadBlocks sends r to the signed URL in blocks of t.BlockSize from
// one reused buffer, then commits the block list; it returns the size.
func (t *Transport) UploadBlocks(ctx context.Context, target string, r io.Reader) (int64, error) {
	prefix, err := blockPrefix()
	if err != nil {
		return 0, err
	}
	buf := make([]byte, t.BlockSize)
	var ids []string
	var size int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if len(ids) == maxBlocks {
				return 0, fmt.Errorf("upload needs more than %d blocks of %d bytes", maxBlocks, t.BlockSize)
			}
			id := base64.StdEncoding.EncodeToString(fmt.Appendf(nil, "%s-%06d", prefix, len(ids)))
			if err := t.put(ctx, target+"&comp=block&blockid="+url.QueryEscape(id), buf[:n], "application/octet-stream"); err != nil {
				return 0, fmt.Errorf("block %d: %w", len(ids), err)
			}
			ids = append(ids, id)
			size += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			return size, t.putBlockList(ctx, target, ids)
		}
		if rerr != nil {
			return 0, rerr
		}
	}
}

// blockPrefix makes block ids unique to this upload, so a retried upload
// never commits a stale block. Ids have equal lengths, as Azure requires.
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

func (t *Transport) putBlockList(ctx context.Context, target string, ids []string) error {
	body, err := xml.Marshal(blockList{Latest: ids})
	if err != nil {
		return fmt.Errorf("encode block list: %w", err)
	}
	body = append([]byte(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>`), body...)
	if err := t.put(ctx, target+"&comp=blocklist", body, "text/plain; charset=UTF-8"); err != nil {
		return fmt.Errorf("commit block list: %w", err)
	}
	return nil
}

// put sends one body to a signed URL, retrying transient failures. No
// token is sent: signed URLs carry their own authority and may point at
// another host (GitHub's blob storage).
func (t *Transport) put(ctx context.Context, u string, body []byte, ctype string) error {
	return t.Retry(ctx, func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, u, bytes.NewReader(body))
		if err != nil {
			return false, err
		}
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("x-ms-blob-type", "BlockBlob")
		resp, err := t.HTTP.Do(req)
		if err != nil {
			return true, err
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		if resp.StatusCode/100 == 2 {
			return false, nil
		}
		return transient(resp.StatusCode), &StatusError{Op: "PUT " + RedactURL(u), Code: resp.StatusCode, Msg: Message(msg)}
	})
}

// transient says whether a status is worth retrying.
func transient(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}

// Retry runs try until it succeeds, fails for good, or t.Retries retries
// are spent, waiting t.Backoff, doubled each time, in between.
func (t *Transport) Retry(ctx context.Context, try func() (retryable bool, err error)) error {
	wait := t.Backoff
	for attempt := 0; ; attempt++ {
		again, err := try()
		if err == nil || !again || attempt >= t.Retries || ctx.Err() != nil {
			return err
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("%w (after %v)", ctx.Err(), err)
		case <-timer.C:
		}
		wait *= 2
	}
}

// Fetch GETs a signed URL into spool (from its start), at most max bytes,
// retrying transient failures; want, when not negative, is the size the
// server announced, and a different one is an error.
func (t *Transport) Fetch(ctx context.Context, u string, spool *os.File, max, want int64) (int64, error) {
	var got int64
	err := t.Retry(ctx, func() (bool, error) {
		if _, err := spool.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		if err := spool.Truncate(0); err != nil {
			return false, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return false, err
		}
		resp, err := t.HTTP.Do(req)
		if err != nil {
			return true, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			return transient(resp.StatusCode), &StatusError{Op: "GET " + RedactURL(u), Code: resp.StatusCode, Msg: Message(msg)}
		}
		n, err := io.Copy(spool, io.LimitReader(resp.Body, max+1))
		got = n
		switch {
		case err != nil:
			return true, fmt.Errorf("read download: %w", err)
		case n > max:
			return false, fmt.Errorf("download is larger than the limit of %d bytes", max)
		case want >= 0 && n != want:
			return true, fmt.Errorf("got %d bytes, the server announced %d", n, want)
		}
		return false, nil
	})
	return got, err
}
