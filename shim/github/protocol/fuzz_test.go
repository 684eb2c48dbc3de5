package protocol

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"testing"
)

// maxFuzzInput bounds fuzzed messages. The client reads at most maxBody
// (64 MiB) of a response; real job messages are tens of kilobytes, and
// bigger fuzz inputs only slow the fuzzer down.
const maxFuzzInput = 64 << 10

// FuzzJobMessage decodes an acquirejob response as AcquireJob does (and
// as a resumed shim decodes the recorded one), then reads it the way the
// shim does. Every template token and context value must survive being
// written back and read again.
func FuzzJobMessage(f *testing.F) {
	f.Add([]byte(jobJSON))
	if b, err := os.ReadFile("../testdata/job.json"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("\xef\xbb\xbf{\"lockedUntil\":\"2026-01-02T03:04:05.1234567\",\"variables\":{\"System.GitHub.Token\":{\"value\":\"t\",\"isSecret\":true}}}"))
	f.Add([]byte(`{"steps":[{"reference":{"type":"2"},"inputs":{"type":1,"seq":[null,true,1e3,{"type":4,"directive":"insert"}]}}],"mask":[{"type":"Regex","value":"x"}]}`))
	f.Add([]byte(`{"contextData":{"github":{"t":5,"d":[{"k":"a","v":{"t":1,"a":[{"t":3,"b":true},{"t":4,"n":-0.5},null]}}]},"x":"s","y":true,"z":3}}`))
	f.Add([]byte(`{"lockedUntil":"not a time"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxFuzzInput {
			return
		}
		var m JobMessage
		if err := decode("fuzz", data, &m); err != nil {
			return
		}
		m.Raw = data
		m.JobToken()
		m.FeedURL()
		m.ResultsURL()
		m.Variable("system.github.token")
		for _, s := range m.Steps {
			_ = s.Reference.IsScript()
			for _, tok := range []*TemplateToken{s.DisplayNameToken, s.Environment, s.Inputs, s.ContinueOnError, s.TimeoutInMinutes} {
				checkToken(t, tok)
			}
		}
		for i := range m.EnvironmentVariables {
			checkToken(t, &m.EnvironmentVariables[i])
		}
		for i := range m.Defaults {
			checkToken(t, &m.Defaults[i])
		}
		checkToken(t, m.JobOutputs)
		for name, d := range m.ContextData {
			checkContext(t, name, d)
		}
	})
}

// checkToken reads a token as the shim does and checks that writing it
// and reading it back changes nothing.
func checkToken(t *testing.T, tok *TemplateToken) {
	t.Helper()
	if tok == nil {
		return
	}
	tok.IsScalar()
	tok.IsExpression()
	tok.Text()
	for _, kv := range tok.Mapping() {
		kv.Value.Text()
	}
	tok.Lookup("script")
	for i := range tok.Sequence() {
		checkToken(t, &tok.Seq[i])
	}
	out, err := json.Marshal(tok)
	if err != nil {
		t.Fatalf("marshal a decoded token: %v", err)
	}
	var back TemplateToken
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("a written token does not read back: %v\n%s", err, out)
	}
	again, err := json.Marshal(back)
	if err != nil || !bytes.Equal(again, out) || back.Text() != tok.Text() || back.Type != tok.Type {
		t.Fatalf("token round trip changed it:\n%s\n%s (%v)", out, again, err)
	}
}

// checkContext checks that a context value written and read back has the
// same plain value (what goes into the plan).
func checkContext(t *testing.T, name string, d ContextData) {
	t.Helper()
	v := d.Value()
	d.Lookup("token")
	out, err := json.Marshal(d)
	if err != nil {
		t.Fatalf("context %s: marshal a decoded value: %v", name, err)
	}
	var back ContextData
	if err := json.Unmarshal(out, &back); err != nil {
		t.Fatalf("context %s: a written value does not read back: %v\n%s", name, err, out)
	}
	if !reflect.DeepEqual(back.Value(), v) {
		t.Fatalf("context %s: round trip changed the value:\n%#v\n%#v", name, v, back.Value())
	}
	if _, err := json.Marshal(v); err != nil {
		t.Fatalf("context %s: the plain value does not encode: %v", name, err)
	}
}

// FuzzBrokerMessages decodes the other message bodies the broker sends.
func FuzzBrokerMessages(f *testing.F) {
	for _, s := range []string{
		`{"id":"j1","runner_request_id":"rr","run_service_url":"https://run/","should_acknowledge":true,"billing_owner_id":"b"}`,
		`{"jobId":"0f4a","timeout":"1.00:05:00.5"}`,
		`{"jobId":"0f4a","timeout":-1e300}`,
		`{"jobId":"0f4a","timeout":"-99999999999999.23:59:59.9999999"}`,
		`{"brokerBaseUrl":"https://broker.actions.githubusercontent.com/"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > maxFuzzInput {
			return
		}
		ParseRunnerJobRequest(body)
		ParseJobCancellation(body)
		ParseBrokerMigration(body)
		ParseTimeSpan(body)
	})
}
