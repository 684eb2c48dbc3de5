package contract

import (
	"slices"
	"strings"
	"testing"
	"time"
)

const testKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH3k5DTGmXc0f0Yk3c8s8kqG3tJb0x6jvI1i0JwL0XyZ alice@laptop"

func TestCheckDebugSSH(t *testing.T) {
	tests := []struct {
		name string
		d    *DebugSSH
		want string // error substring; "" for valid
	}{
		{"none", nil, ""},
		{"one key", &DebugSSH{User: "alice", Keys: []string{testKey}}, ""},
		{"no user", &DebugSSH{Keys: []string{testKey}}, "want a forge login"},
		{"no keys", &DebugSSH{User: "alice"}, "no keys"},
		{"options", &DebugSSH{User: "alice", Keys: []string{`command="rm -rf /" ` + testKey}}, "unknown key type"},
		{"two lines", &DebugSSH{User: "alice", Keys: []string{testKey + "\n" + testKey}}, "more than one line"},
		{"not base64", &DebugSSH{User: "alice", Keys: []string{"ssh-ed25519 AAAA$(reboot)"}}, "not base64"},
		{"type only", &DebugSSH{User: "alice", Keys: []string{"ssh-ed25519"}}, "want TYPE"},
		{"too many", &DebugSSH{User: "alice", Keys: slices.Repeat([]string{testKey}, MaxDebugKeys+1)}, "over 16"},
		{"too long", &DebugSSH{User: "alice", Keys: []string{"ssh-rsa " + strings.Repeat("A", MaxDebugKeyLen)}}, "bytes, over"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckDebugSSH(tt.d)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestDebugEventRoundTrip(t *testing.T) {
	exp := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	ev := Event{Seq: 9, Time: exp, Type: TypeDebugSession, Message: "hi",
		Debug: &DebugSession{Host: "ci.example.org", Port: 31022, User: "solstice", Expires: exp}}
	got, err := DecodeEvent(MarshalEvent(&ev))
	if err != nil {
		t.Fatal(err)
	}
	if got.Debug == nil || *got.Debug != *ev.Debug {
		t.Fatalf("debug %+v, want %+v", got.Debug, ev.Debug)
	}
	if c := got.Debug.Command(); c != "ssh -p 31022 solstice@ci.example.org" {
		t.Fatalf("command %q", c)
	}
}

func TestCheckerDebugEvents(t *testing.T) {
	addr := &DebugSession{Host: "h", Port: 22022, User: "u"}
	start := Event{Type: TypeJobStarted, Steps: 1}
	tests := []struct {
		name    string
		events  []Event
		wantErr bool
	}{
		{"after failure", []Event{start, {Type: TypeJobFinished, Conclusion: Failure}, {Type: TypeDebugSession, Debug: addr}, {Type: TypeDebugEnded}}, false},
		{"no session", []Event{start, {Type: TypeJobFinished, Conclusion: Failure}, {Type: TypeDebugEnded, Message: "no keys"}}, false},
		{"forged mid-job", []Event{start, {Type: TypeDebugSession, Debug: addr}}, true},
		{"after success", []Event{start, {Type: TypeJobFinished, Conclusion: Success}, {Type: TypeDebugSession, Debug: addr}}, true},
		{"two sessions", []Event{start, {Type: TypeJobFinished, Conclusion: Failure}, {Type: TypeDebugSession, Debug: addr}, {Type: TypeDebugSession, Debug: addr}}, true},
		{"no port", []Event{start, {Type: TypeJobFinished, Conclusion: Failure}, {Type: TypeDebugSession, Debug: &DebugSession{Host: "h", User: "u"}}}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c Checker
			var err error
			for i := range tt.events {
				ev := tt.events[i]
				ev.Seq = int64(i + 1)
				if _, err = c.Check(&ev); err != nil {
					break
				}
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
		})
	}
}

func TestEnds(t *testing.T) {
	failed := &Event{Type: TypeJobFinished, Conclusion: Failure}
	passed := &Event{Type: TypeJobFinished, Conclusion: Success}
	ended := &Event{Type: TypeDebugEnded}
	tests := []struct {
		ev    *Event
		debug bool
		want  bool
	}{
		{failed, false, true}, {failed, true, false}, {passed, true, true},
		{ended, true, true}, {&Event{Type: TypeInfraError}, true, true},
	}
	for _, tt := range tests {
		if got := Ends(tt.ev, tt.debug); got != tt.want {
			t.Errorf("Ends(%s %s, debug=%v) = %v, want %v", tt.ev.Type, tt.ev.Conclusion, tt.debug, got, tt.want)
		}
	}
}
