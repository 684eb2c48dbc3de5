package artifact

import (
	"net/http/httptest"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/internal/artifactfake"
)

const fakeRunID, fakeJobID = "21", "49"

func fakeToken(scp string) string {
	return artifactfake.TokenWithScope(scp)
}

type fakeForge struct {
	*artifactfake.Server
	srv *httptest.Server
}

// newFakeForge serves a strict artifact service and fails the test on
// any protocol violation it saw.
func newFakeForge(t *testing.T) *fakeForge {
	fs := artifactfake.New(t.TempDir(), fakeRunID, fakeJobID)
	srv := httptest.NewServer(fs)
	fs.BaseURL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		for _, p := range fs.Problems() {
			t.Errorf("artifact service: %s", p)
		}
	})
	return &fakeForge{Server: fs, srv: srv}
}

func (f *fakeForge) client(t *testing.T, opts ...Option) *Client {
	opts = append([]Option{WithRetries(3, time.Millisecond), WithHTTPClient(f.srv.Client())}, opts...)
	c, err := New(f.srv.URL+"/", f.RuntimeToken(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *fakeForge) info(t *testing.T, name string) artifactfake.Info {
	t.Helper()
	a, ok := f.Artifact(name)
	if !ok {
		t.Fatalf("the forge has no artifact %q", name)
	}
	return a
}
