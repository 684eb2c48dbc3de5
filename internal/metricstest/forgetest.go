// Package metricstest reads a shim's /metrics the way Prometheus stores it,
// as series names with their label names, so a shim's tests can pin the
// names that dashboards and alerts rely on.
package metricstest

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
)

// Metric is one metric as a scrape shows it. Type "" checks no # TYPE
// line: the series Name itself must be there.
type Metric struct {
	Name   string
	Type   string // gauge, counter, histogram, summary or ""
	Labels string // label names, comma-separated, in exposition order
}

// Exposition is one scrape of /metrics.
type Exposition struct {
	Body   string
	types  map[string]string   // family -> type
	labels map[string]string   // series -> label names
	les    map[string][]string // histogram -> bucket bounds, in order
}

// Get answers a GET of path from h.
func Get(t testing.TB, h http.Handler, path string) (code int, body string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
	b, err := io.ReadAll(rec.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return rec.Code, string(b)
}

// Scrape gets /metrics from h.
func Scrape(t testing.TB, h http.Handler) Exposition {
	t.Helper()
	code, body := Get(t, h, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	e := Exposition{Body: body, types: map[string]string{}, labels: map[string]string{}, les: map[string][]string{}}
	for _, line := range strings.Split(e.Body, "\n") {
		e.read(line)
	}
	return e
}

func (e Exposition) read(line string) {
	if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
		name, typ, _ := strings.Cut(f, " ")
		e.types[name] = typ
		return
	}
	if line == "" || strings.HasPrefix(line, "#") {
		return
	}
	name, labels, values := series(line)
	e.labels[name] = strings.Join(labels, ",")
	if h, ok := strings.CutSuffix(name, "_bucket"); ok && len(values) > 0 {
		e.les[h] = append(e.les[h], values[len(values)-1])
	}
}

// series splits `name{k="v",...} value` into the name, the label names
// and the label values.
func series(line string) (name string, labels, values []string) {
	name, l, ok := strings.Cut(line, "{")
	if !ok {
		name, _, _ = strings.Cut(line, " ")
		return name, nil, nil
	}
	for !strings.HasPrefix(l, "}") {
		k, v, _ := strings.Cut(l, "=")
		q, err := strconv.QuotedPrefix(v)
		if err != nil {
			break
		}
		uq, _ := strconv.Unquote(q)
		labels, values = append(labels, k), append(values, uq)
		l = strings.TrimPrefix(v[len(q):], ",")
	}
	return name, labels, values
}

// Expect fails t for each metric the scrape lacks or shows with another
// type or other labels.
func (e Exposition) Expect(t testing.TB, want []Metric) {
	t.Helper()
	for _, m := range want {
		if m.Type != "" && e.types[m.Name] != m.Type {
			t.Errorf("%s: type %q, want %q", m.Name, e.types[m.Name], m.Type)
		}
		for _, s := range seriesOf(m) {
			if got, ok := e.labels[s]; !ok || got != m.Labels {
				t.Errorf("%s: labels %q (exposed: %v), want %q", s, got, ok, m.Labels)
			}
		}
	}
	if t.Failed() {
		t.Log(e.Body)
	}
}

// seriesOf names the series a metric of its type is exposed as.
func seriesOf(m Metric) []string {
	switch m.Type {
	case "histogram", "summary":
		return []string{m.Name + "_sum", m.Name + "_count"}
	}
	return []string{m.Name}
}

// Buckets is the upper bounds of histogram's buckets, "+Inf" last.
func (e Exposition) Buckets(histogram string) []string { return e.les[histogram] }
