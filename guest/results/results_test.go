package results

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

func TestMessage(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"code":"not_found","msg":"Error artifact not found"}`, "Error artifact not found"},
		{"plain text\nsecond line", "plain text"},
		{"bell\x07 and \x1b[31mred", "bell and [31mred"},
		{strings.Repeat("x", 300), strings.Repeat("x", 200) + "…"},
	} {
		if got := Message([]byte(tc.in)); got != tc.want {
			t.Errorf("Message(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseHTTPURL(t *testing.T) {
	for _, s := range []string{"file:///etc/passwd", "gopher://x", "//host/path", "http://", "ftp://h/"} {
		if _, err := ParseHTTPURL(s); err == nil {
			t.Errorf("ParseHTTPURL(%q) accepted", s)
		}
	}
	if _, err := ParseHTTPURL("https://blob.example/c?sig=x"); err != nil {
		t.Error(err)
	}
}

func TestFetchRetriesAndLimits(t *testing.T) {
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		switch r.URL.Path {
		case "/flaky":
			if calls == 1 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
			w.Write([]byte("hello"))
		case "/gone":
			http.Error(w, "no", http.StatusNotFound)
		default:
			w.Write([]byte(strings.Repeat("z", 100)))
		}
	}))
	defer srv.Close()
	tr := &Transport{HTTP: srv.Client(), BlockSize: 4, Retries: 3, Backoff: time.Millisecond}
	spool, err := os.CreateTemp(t.TempDir(), "s")
	if err != nil {
		t.Fatal(err)
	}
	defer spool.Close()
	if n, err := tr.Fetch(context.Background(), srv.URL+"/flaky", spool, 10, 5); err != nil || n != 5 || calls != 2 {
		t.Errorf("flaky: %d bytes, %v, %d calls", n, err, calls)
	}
	calls = 0
	if _, err := tr.Fetch(context.Background(), srv.URL+"/gone", spool, 10, -1); !HasStatus(err, 404) || calls != 1 {
		t.Errorf("404 must fail at once: %v after %d calls", err, calls)
	}
	if _, err := tr.Fetch(context.Background(), srv.URL+"/big", spool, 10, -1); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("oversized download: %v", err)
	}
}

func TestRetryStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &Transport{Retries: 100, Backoff: time.Hour}
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	err := tr.Retry(ctx, func() (bool, error) { return true, errors.New("down") })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Retry after cancel: %v", err)
	}
}

// Gitea answers in lowerCamelCase, GitHub in proto names; both decode
// the same, and numbers keep their precision.
func TestProtoNames(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`{"ok":true,"signedUploadUrl":"u"}`, `{"ok":true,"signed_upload_url":"u"}`},
		{`{"ok":true,"signed_upload_url":"u"}`, `{"ok":true,"signed_upload_url":"u"}`},
		{`{"artifacts":[{"databaseId":"9007199254740993","createdAt":"t"}]}`, `{"artifacts":[{"created_at":"t","database_id":"9007199254740993"}]}`},
		{`{"entryId":9007199254740993}`, `{"entry_id":9007199254740993}`},
	} {
		got, err := ProtoNames([]byte(tc.in))
		if err != nil || string(got) != tc.want {
			t.Errorf("ProtoNames(%s) = %s, %v; want %s", tc.in, got, err, tc.want)
		}
	}
	if _, err := ProtoNames([]byte(`{"ok":`)); err == nil {
		t.Error("ProtoNames accepted broken JSON")
	}
}
