package cache

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

type env struct {
	t      *testing.T
	srv    *httptest.Server
	store  *Store
	minter *Minter
}

func newEnv(t *testing.T, limit int64) *env {
	m, err := NewMinter(bytes.Repeat([]byte("k"), 32))
	if err != nil {
		t.Fatal(err)
	}
	st, err := NewStore(t.TempDir(), limit)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, store: st, minter: m}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		NewServer(st, m, e.srv.URL, hclog.NewNullLogger()).ServeHTTP(w, r)
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) token(repo string) string {
	tok, err := e.minter.Mint(repo, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// call posts a Twirp request; it returns the status and decoded answer.
func (e *env) call(tok, method string, body any) (int, map[string]any) {
	e.t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+ServicePrefix+method, bytes.NewReader(data))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func (e *env) put(u string, body []byte) int {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, u, bytes.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (e *env) get(u string) (int, []byte) {
	e.t.Helper()
	resp, err := http.Get(u)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// save stores data under key as repo, in two blocks and a block list.
func (e *env) save(repo, key string, data []byte) int {
	e.t.Helper()
	tok := e.token(repo)
	code, ans := e.call(tok, "CreateCacheEntry", map[string]any{"key": key, "version": "v1"})
	if code != 200 {
		return code
	}
	u := ans["signedUploadUrl"].(string)
	half := len(data) / 2
	if c := e.put(u+"&comp=block&blockid=QQ", data[:half]); c != 201 {
		return c
	}
	if c := e.put(u+"&comp=block&blockid=Qg", data[half:]); c != 201 {
		return c
	}
	if c := e.put(u+"&comp=blocklist", []byte(`<?xml version="1.0" encoding="utf-8"?><BlockList><Latest>QQ</Latest><Latest>Qg</Latest></BlockList>`)); c != 201 {
		return c
	}
	code, _ = e.call(tok, "FinalizeCacheEntryUpload", map[string]any{"key": key, "version": "v1", "size_bytes": fmt.Sprint(len(data))})
	return code
}

// restore returns the matched key and data, "" on a miss.
func (e *env) restore(repo, key string, restoreKeys ...string) (string, string) {
	e.t.Helper()
	code, ans := e.call(e.token(repo), "GetCacheEntryDownloadURL", map[string]any{"key": key, "restore_keys": restoreKeys, "version": "v1"})
	if code != 200 {
		e.t.Fatalf("lookup: %d %v", code, ans)
	}
	if ans["ok"] != true {
		return "", ""
	}
	c, data := e.get(ans["signedDownloadUrl"].(string))
	if c != 200 {
		e.t.Fatalf("download: %d", c)
	}
	return ans["matchedKey"].(string), string(data)
}

func TestSaveAndRestore(t *testing.T) {
	e := newEnv(t, 1<<20)
	if c := e.save("o/r", "deps-linux-abc", []byte("first entry")); c != 200 {
		t.Fatalf("save: %d", c)
	}
	time.Sleep(10 * time.Millisecond)
	if c := e.save("o/r", "deps-linux-def", []byte("second entry")); c != 200 {
		t.Fatalf("save: %d", c)
	}
	for _, tc := range []struct {
		repo, key   string
		restore     []string
		matched, is string
	}{
		{"o/r", "deps-linux-abc", nil, "deps-linux-abc", "first entry"},
		{"O/R", "deps-linux-abc", nil, "deps-linux-abc", "first entry"},
		{"o/r", "deps-linux-zzz", []string{"nothing-", "deps-linux-"}, "deps-linux-def", "second entry"},
		{"o/r", "deps-linux-zzz", nil, "", ""},
		{"o/other", "deps-linux-abc", []string{"deps-"}, "", ""},
	} {
		m, data := e.restore(tc.repo, tc.key, tc.restore...)
		if m != tc.matched || data != tc.is {
			t.Errorf("restore %s %s %v = %q %q, want %q %q", tc.repo, tc.key, tc.restore, m, data, tc.matched, tc.is)
		}
	}
	if c := e.save("o/r", "deps-linux-abc", []byte("again")); c != http.StatusConflict {
		t.Errorf("saving an existing key: %d, want 409", c)
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, 1<<20)
	other, _ := NewMinter(bytes.Repeat([]byte("x"), 32))
	forged, _ := other.Mint("o/r", time.Hour)
	expired, _ := e.minter.Mint("o/r", -time.Minute)
	for _, tc := range []struct {
		name string
		tok  string
		body any
		want int
	}{
		{"no token", "", map[string]any{"key": "k", "version": "v"}, 401},
		{"foreign key", forged, map[string]any{"key": "k", "version": "v"}, 401},
		{"expired", expired, map[string]any{"key": "k", "version": "v"}, 401},
		{"unknown field", e.token("o/r"), map[string]any{"key": "k", "version": "v", "scope": "x"}, 400},
		{"comma in key", e.token("o/r"), map[string]any{"key": "a,b", "version": "v"}, 400},
		{"long key", e.token("o/r"), map[string]any{"key": strings.Repeat("k", 513), "version": "v"}, 400},
		{"bad version", e.token("o/r"), map[string]any{"key": "k", "version": "../x"}, 400},
	} {
		if c, _ := e.call(tc.tok, "CreateCacheEntry", tc.body); c != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, c, tc.want)
		}
	}
}

func TestSignedURLsBindRepository(t *testing.T) {
	e := newEnv(t, 1<<20)
	if c := e.save("a/secret", "k", []byte("private")); c != 200 {
		t.Fatal(c)
	}
	_, ans := e.call(e.token("a/secret"), "GetCacheEntryDownloadURL", map[string]any{"key": "k", "version": "v1"})
	u, _ := url.Parse(ans["signedDownloadUrl"].(string))
	q := u.Query()
	q.Set("r", "Yi9ldmls") // b/evil
	u.RawQuery = q.Encode()
	if c, _ := e.get(u.String()); c != http.StatusForbidden {
		t.Errorf("tampered repository: %d, want 403", c)
	}
	q = u.Query()
	q.Set("op", "put")
	u.RawQuery = q.Encode()
	if c := e.put(u.String(), []byte("x")); c != http.StatusForbidden {
		t.Errorf("download URL used to upload: %d, want 403", c)
	}
}

func TestLRUEviction(t *testing.T) {
	e := newEnv(t, 4000) // one entry may be 1000 bytes
	blob := func(c byte) []byte { return bytes.Repeat([]byte{c}, 900) }
	for _, k := range []string{"a", "b", "c", "d"} {
		if c := e.save("o/r", k, blob(k[0])); c != 200 {
			t.Fatalf("save %s: %d", k, c)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if m, _ := e.restore("o/r", "a"); m != "a" { // a is now the most recently used
		t.Fatal("a missing before eviction")
	}
	time.Sleep(20 * time.Millisecond)
	if c := e.save("o/r", "e", blob('e')); c != 200 {
		t.Fatalf("save e: %d", c)
	}
	have := ""
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		if m, _ := e.restore("o/r", k); m == k {
			have += k
		}
	}
	if have != "acde" {
		t.Errorf("entries after eviction: %q, want acde (b least recently used)", have)
	}
	if c := e.save("o/r", "huge", bytes.Repeat([]byte("h"), 1200)); c != http.StatusRequestEntityTooLarge {
		t.Errorf("entry above a quarter of the store: %d, want 413", c)
	}
}
