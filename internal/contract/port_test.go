package contract

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
)

func TestFramesRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	frames := []struct {
		kind    string
		payload string
	}{
		{FrameIdentity, `{"user":"u"}`},
		{FrameOK, ""},
		{FrameData, "{\"type\":\"job_started\"}\n"},
		{FrameExit, `{"code":3}`},
	}
	for _, f := range frames {
		if err := WriteFrame(&buf, f.kind, []byte(f.payload)); err != nil {
			t.Fatal(err)
		}
	}
	r := bufio.NewReader(&buf)
	for _, f := range frames {
		kind, payload, err := ReadFrame(r)
		if err != nil || kind != f.kind || string(payload) != f.payload {
			t.Fatalf("read %q %q %v, want %q %q", kind, payload, err, f.kind, f.payload)
		}
	}
	if _, _, err := ReadFrame(r); err != io.EOF {
		t.Fatalf("after the last frame: %v, want io.EOF", err)
	}
}

func TestReadFrameRefusesWhatItCannotBound(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"unknown kind", "shell 2\nls", `header "shell 2"`},
		{"no length", "data\n", `header "data"`},
		{"negative length", "data -1\n", "bad length"},
		{"signed length", "data +1\nx", "bad length"},
		{"leading zero", "data 01\nx", "bad length"},
		{"over the kind's limit", "ok 1\nx", "over its 0-byte limit"},
		{"data over its limit", "data 65537\n", "over its 65536-byte limit"},
		{"header without end", "data " + strings.Repeat("1", 40), "header longer than"},
		{"header cut short", "data 1", "header cut short"},
		{"payload cut short", "data 5\nab", "data frame cut short"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := ReadFrame(bufio.NewReader(strings.NewReader(tc.in)))
			if !errors.Is(err, ErrFrame) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an ErrFrame saying %q", err, tc.want)
			}
		})
	}
}

func TestWriteFrameKeepsToTheLimits(t *testing.T) {
	if err := WriteFrame(io.Discard, "shell", nil); !errors.Is(err, ErrFrame) {
		t.Errorf("unknown kind: %v", err)
	}
	if err := WriteFrame(io.Discard, FrameData, make([]byte, PortMaxData+1)); !errors.Is(err, ErrFrame) {
		t.Errorf("oversized data: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	f.Add([]byte("data 3\nabcexit 10\n{\"code\":0}"))
	f.Add([]byte("error 5\nhello"))
	f.Add([]byte("identity 99999999999\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bufio.NewReader(bytes.NewReader(in))
		read := 0
		for {
			kind, payload, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(payload) > frameLimits[kind] {
				t.Fatalf("%s frame of %d bytes passed its limit", kind, len(payload))
			}
			read += len(payload)
			if read > len(in) {
				t.Fatalf("read more payload (%d) than the input has (%d)", read, len(in))
			}
			var again bytes.Buffer
			if err := WriteFrame(&again, kind, payload); err != nil {
				t.Fatalf("a frame read back does not write: %v", err)
			}
		}
	})
}

func TestIdentityValidate(t *testing.T) {
	good := Identity{
		UnixNano: 1, Seed: make([]byte, 32), MachineID: strings.Repeat("ab", 16),
		Hostname: "job-1f2e", InstanceID: "d146-92b8", User: "solstice",
		AuthorizedKey: "ssh-ed25519 AAAA task", HostKeyPEM: "-----BEGIN OPENSSH PRIVATE KEY-----\nx\n-----END OPENSSH PRIVATE KEY-----\n",
		HostKeyPub: "ssh-ed25519 AAAA host",
	}
	if err := good.Validate(); err != nil {
		t.Fatalf("a good identity: %v", err)
	}
	cases := []struct {
		name  string
		edit  func(*Identity)
		field string
	}{
		{"no clock", func(id *Identity) { id.UnixNano = 0 }, "unix_nano"},
		{"short seed", func(id *Identity) { id.Seed = id.Seed[:8] }, "seed"},
		{"machine id", func(id *Identity) { id.MachineID = "../../etc/passwd" }, "machine_id"},
		{"hostname with a newline", func(id *Identity) { id.Hostname = "a\n127.0.0.1 evil" }, "hostname"},
		{"instance id with a slash", func(id *Identity) { id.InstanceID = "a/b" }, "instance_id"},
		{"user with a path", func(id *Identity) { id.User = "../root" }, "user"},
		{"two keys", func(id *Identity) { id.AuthorizedKey = "ssh-ed25519 A\nssh-ed25519 B" }, "authorized_key"},
		{"host key", func(id *Identity) { id.HostKeyPEM = "x" }, "host_key_pem"},
		{"host key line", func(id *Identity) { id.HostKeyPub = "ssh-rsa AAAA" }, "host_key_pub"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := good
			tc.edit(&id)
			err := id.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Fatalf("got %v, want a problem with %s", err, tc.field)
			}
		})
	}
}
