package protocol

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// brokerEnv is a token endpoint plus a broker served by route.
type brokerEnv struct {
	srv    *recorder
	client *Client
	tokens atomic.Int32
}

func newBrokerEnv(t *testing.T, route func(w http.ResponseWriter, r recorded)) *brokerEnv {
	env := &brokerEnv{}
	env.srv = newRecorder(t, func(w http.ResponseWriter, r recorded) {
		if r.Path == "/token" {
			i := env.tokens.Add(1)
			writeJSON(w, 200, map[string]any{"access_token": "tok" + string(rune('0'+i)), "expires_in": 3600})
			return
		}
		route(w, r)
	})
	c := testCreds(t, env.srv.URL+"/token", true)
	c.ServerURLV2 = env.srv.URL + "/broker/"
	env.client = NewClient(c, NewTokenSource(c, nil), RunnerInfo{Version: "2.999.0", DisableUpdate: true}, nil)
	return env
}

// brokerRequests drops the token requests.
func (env *brokerEnv) brokerRequests() []recorded {
	var out []recorded
	for _, r := range env.srv.requests() {
		if r.Path != "/token" {
			out = append(out, r)
		}
	}
	return out
}

func TestCreateSession(t *testing.T) {
	env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) {
		writeJSON(w, 200, map[string]any{"sessionId": "5c4a3e2b-0000-0000-0000-000000000001", "ownerName": "x",
			"agent": map[string]any{"id": 7, "name": "vm1"}, "useFipsEncryption": false})
	})
	s, err := env.client.CreateSession(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if s.SessionID != "5c4a3e2b-0000-0000-0000-000000000001" || s.BrokerURL() != env.srv.URL+"/broker/" {
		t.Errorf("session %+v", s)
	}
	r := env.brokerRequests()[0]
	if r.Method != "POST" || r.Path != "/broker/session" || r.Header.Get("Authorization") != "Bearer tok1" ||
		!strings.HasPrefix(r.Header.Get("User-Agent"), "GitHubActionsRunner-") {
		t.Errorf("request %s %s %v", r.Method, r.Path, r.Header)
	}
	m := r.json(t)
	agent, _ := m["agent"].(map[string]any)
	if !strings.Contains(m["ownerName"].(string), "(PID: ") || m["useFipsEncryption"] != false ||
		agent["id"] != float64(7) || agent["name"] != "vm1" || agent["version"] != "2.999.0" || agent["osDescription"] == "" {
		t.Errorf("session body %v", m)
	}
}

func TestCreateSessionConflict(t *testing.T) {
	env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) { w.WriteHeader(409) })
	_, err := env.client.CreateSession(context.Background())
	var he *HTTPError
	if !errors.Is(err, ErrSessionConflict) || !errors.As(err, &he) || he.StatusCode != 409 {
		t.Fatalf("err = %v", err)
	}
}

func TestReauthOnce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fails    int32
		wantErr  bool
		wantToks int32
	}{{"recovers", 1, false, 2}, {"gives up", 5, true, 2}} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) {
				if calls.Add(1) <= tc.fails {
					w.WriteHeader(401)
					return
				}
				writeJSON(w, 200, map[string]any{"sessionId": "s"})
			})
			_, err := env.client.CreateSession(context.Background())
			if (err != nil) != tc.wantErr || env.tokens.Load() != tc.wantToks || calls.Load() != 2 {
				t.Fatalf("err %v, %d token fetches, %d calls", err, env.tokens.Load(), calls.Load())
			}
		})
	}
}

func TestGetMessage(t *testing.T) {
	for _, tc := range []struct {
		name     string
		status   int
		body     string
		wantType string
		wantKind string
	}{
		{"job", 200, `{"messageId":5,"messageType":"RunnerJobRequest","body":"{\"id\":\"1\"}"}`, MessageRunnerJobRequest, ""},
		{"accepted", 202, ``, "", ""},
		{"no content", 204, ``, "", ""},
		{"empty 200", 200, ``, "", ""},
		{"too old", 403, `{"source":"actions-broker-listener","errorKind":"RunnerVersionTooOld","statusCode":403,"errorMessage":"Runner version v2.300.0 is deprecated and cannot receive messages."}`, "", ErrorRunnerVersionTooOld},
		{"session", 404, `{"source":"actions-broker-listener","errorKind":"RunnerSessionInvalid","statusCode":404,"errorMessage":"x"}`, "", ErrorRunnerSessionInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			})
			m, err := env.client.GetMessage(context.Background(), &Session{SessionID: "sid", base: env.srv.URL + "/broker/"}, Busy)
			var be *BrokerError
			switch {
			case tc.wantKind != "":
				if !errors.As(err, &be) || be.ErrorKind != tc.wantKind || be.HTTPStatus != tc.status {
					t.Fatalf("err = %v", err)
				}
			case err != nil:
				t.Fatal(err)
			case tc.wantType == "" && m != nil:
				t.Fatalf("want no message, got %+v", m)
			case tc.wantType != "" && (m == nil || m.MessageType != tc.wantType || m.MessageID != 5):
				t.Fatalf("message %+v", m)
			}
			r := env.brokerRequests()[0]
			q, _ := url.ParseQuery(r.RawQuery)
			if r.Method != "GET" || r.Path != "/broker/message" || q.Get("sessionId") != "sid" || q.Get("status") != "Busy" ||
				q.Get("runnerVersion") != "2.999.0" || q.Get("os") != "Linux" || q.Get("architecture") != "X64" || q.Get("disableUpdate") != "true" {
				t.Errorf("poll %s %s?%s", r.Method, r.Path, r.RawQuery)
			}
		})
	}
}

func TestGetMessagePollTimeout(t *testing.T) {
	env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) { time.Sleep(300 * time.Millisecond); w.WriteHeader(202) })
	env.client.PollTimeout = 50 * time.Millisecond
	m, err := env.client.GetMessage(context.Background(), &Session{SessionID: "s", base: env.srv.URL + "/"}, Online)
	if m != nil || err != nil {
		t.Fatalf("poll timeout should be 'no message': %v %v", m, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := env.client.GetMessage(ctx, &Session{SessionID: "s", base: env.srv.URL + "/"}, Online); err == nil {
		t.Fatal("a cancelled context must be an error")
	}
}

func TestBrokerMigration(t *testing.T) {
	var migrated atomic.Bool
	env := newBrokerEnv(t, nil)
	env.srv.route = func(w http.ResponseWriter, r recorded) {
		switch r.Path {
		case "/token":
			writeJSON(w, 200, map[string]any{"access_token": "t", "expires_in": 3600})
		case "/broker/message":
			writeJSON(w, 200, map[string]any{"messageId": 1, "messageType": "BrokerMigration",
				"body": `{"brokerBaseUrl":"` + env.srv.URL + `/broker2/"}`})
		case "/broker2/message":
			migrated.Store(true)
			w.WriteHeader(202)
		case "/broker2/acknowledge":
			w.WriteHeader(200)
		}
	}
	s := &Session{SessionID: "s", base: env.srv.URL + "/broker/"}
	m, err := env.client.GetMessage(context.Background(), s, Online)
	if err != nil || m == nil || m.MessageType != MessageBrokerMigration || s.BrokerURL() != env.srv.URL+"/broker2/" {
		t.Fatalf("migration: %v %+v %s", err, m, s.BrokerURL())
	}
	if m, err := env.client.GetMessage(context.Background(), s, Online); m != nil || err != nil || !migrated.Load() {
		t.Fatalf("poll after migration: %v %v", m, err)
	}
	if err := env.client.Acknowledge(context.Background(), s, "rr-1", Busy); err != nil {
		t.Fatalf("acknowledge should use the migrated base: %v", err)
	}
}

func TestAcknowledge(t *testing.T) {
	env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) {
		writeJSON(w, 404, map[string]any{"source": "actions-broker-listener", "errorKind": "AcknowledgeJobNotFound", "statusCode": 404, "errorMessage": "Assigned job no longer exists"})
	})
	err := env.client.Acknowledge(context.Background(), &Session{SessionID: "sid", base: env.srv.URL + "/b/"}, "rr-9", Online)
	var be *BrokerError
	if !errors.As(err, &be) || be.ErrorKind != ErrorAcknowledgeJobNotFound {
		t.Fatalf("err = %v", err)
	}
	r := env.brokerRequests()[0]
	q, _ := url.ParseQuery(r.RawQuery)
	if r.Method != "POST" || r.Path != "/b/acknowledge" || q.Get("sessionId") != "sid" || q.Get("status") != "Online" ||
		q.Get("runnerVersion") != "2.999.0" || q.Has("disableUpdate") || r.json(t)["runnerRequestId"] != "rr-9" {
		t.Errorf("ack %s %s?%s %s", r.Method, r.Path, r.RawQuery, r.Body)
	}
}

func TestDeleteSession(t *testing.T) {
	env := newBrokerEnv(t, func(w http.ResponseWriter, r recorded) { w.WriteHeader(200) })
	if err := env.client.DeleteSession(context.Background(), &Session{SessionID: "s", base: env.srv.URL + "/b"}); err != nil {
		t.Fatal(err)
	}
	if r := env.brokerRequests()[0]; r.Method != "DELETE" || r.Path != "/b/session" || r.RawQuery != "" {
		t.Errorf("delete %s %s?%s", r.Method, r.Path, r.RawQuery)
	}
}

func TestParseMessages(t *testing.T) {
	r, err := ParseRunnerJobRequest(`{"id":"j1","runner_request_id":"rr","run_service_url":"https://run/","should_acknowledge":true,"billing_owner_id":"b"}`)
	if err != nil || r.ID != "j1" || r.RunnerRequestID != "rr" || r.RunServiceURL != "https://run/" || !r.ShouldAcknowledge || r.BillingOwnerID != "b" {
		t.Fatalf("%v %+v", err, r)
	}
	c, err := ParseJobCancellation(`{"jobId":"0f4a","timeout":"1.00:05:00.5"}`)
	if err != nil || c.JobID != "0f4a" || c.Timeout != 24*time.Hour+5*time.Minute+500*time.Millisecond {
		t.Fatalf("%v %+v", err, c)
	}
	if _, err := ParseBrokerMigration(`{}`); err == nil {
		t.Error("empty migration accepted")
	}
}
