package qemuuser

import (
	"context"
	"errors"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// fakeSystem is an account database in memory. useradd and groupadd
// change it unless told to fail.
type fakeSystem struct {
	users  map[string]user.User
	groups map[string]string // gid -> name
	// failAdd makes useradd fail; raceAdd makes it fail although the
	// account appears (another plugin created it first).
	failAdd, raceAdd bool
	ran              []string
}

func (f *fakeSystem) LookupUser(name string) (*user.User, error) {
	if u, ok := f.users[name]; ok {
		return &u, nil
	}
	return nil, user.UnknownUserError(name)
}

func (f *fakeSystem) LookupGroupID(gid string) (*user.Group, error) {
	if name, ok := f.groups[gid]; ok {
		return &user.Group{Gid: gid, Name: name}, nil
	}
	return nil, user.UnknownGroupIdError(gid)
}

func (f *fakeSystem) Run(_ context.Context, name string, args ...string) error {
	f.ran = append(f.ran, name+" "+strings.Join(args, " "))
	login := args[len(args)-1]
	switch name {
	case "groupadd":
		f.groups[args[slices.Index(args, "--gid")+1]] = login
		return nil
	case "useradd":
		if f.failAdd {
			return errors.New("useradd: cannot lock /etc/passwd")
		}
		gid := "999"
		if i := slices.Index(args, "--gid"); i >= 0 {
			gid = args[i+1]
		}
		f.users[login] = user.User{Username: login, Uid: "998", Gid: gid}
		if f.raceAdd {
			return errors.New("useradd: user '" + login + "' already exists")
		}
		return nil
	}
	return errors.New("unexpected tool " + name)
}

const addArgs = "--system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin --comment Solstice QEMU (unprivileged)"

func TestEnsure(t *testing.T) {
	existing := map[string]user.User{
		"solstice-qemu": {Username: "solstice-qemu", Uid: "64998", Gid: "100"},
		"root":          {Username: "root", Uid: "0", Gid: "0"},
		"toor":          {Username: "toor", Uid: "0", Gid: "0"},
	}
	tests := []struct {
		name     string
		want     Want
		groups   map[string]string
		failAdd  bool
		raceAdd  bool
		wantAcct Account
		wantRan  []string
		wantErr  string
	}{
		{name: "existing user runs with the isolation gid",
			want: Want{Name: "solstice-qemu", GID: 64999}, wantAcct: Account{Name: "solstice-qemu", UID: 64998, GID: 64999}},
		{name: "existing user keeps its group without isolation",
			want: Want{Name: "solstice-qemu"}, wantAcct: Account{Name: "solstice-qemu", UID: 64998, GID: 100}},
		{name: "created with the isolation group, made first",
			want:     Want{Name: "qemu-new", GID: 64999},
			wantAcct: Account{Name: "qemu-new", UID: 998, GID: 64999},
			wantRan:  []string{"groupadd --system --gid 64999 qemu-new", "useradd " + addArgs + " --gid 64999 qemu-new"}},
		{name: "created in an existing isolation group",
			want: Want{Name: "qemu-new", GID: 64999}, groups: map[string]string{"64999": "fenced"},
			wantAcct: Account{Name: "qemu-new", UID: 998, GID: 64999},
			wantRan:  []string{"useradd " + addArgs + " --gid 64999 qemu-new"}},
		{name: "created with a group of its own without isolation",
			want:     Want{Name: "qemu-new"},
			wantAcct: Account{Name: "qemu-new", UID: 998, GID: 999},
			wantRan:  []string{"useradd " + addArgs + " --user-group qemu-new"}},
		{name: "created meanwhile by another plugin",
			want: Want{Name: "qemu-new", GID: 64999}, groups: map[string]string{"64999": "fenced"}, raceAdd: true,
			wantAcct: Account{Name: "qemu-new", UID: 998, GID: 64999},
			wantRan:  []string{"useradd " + addArgs + " --gid 64999 qemu-new"}},
		{name: "useradd fails",
			want: Want{Name: "qemu-new", GID: 64999}, groups: map[string]string{"64999": "fenced"}, failAdd: true,
			wantRan: []string{"useradd " + addArgs + " --gid 64999 qemu-new"}, wantErr: "cannot lock /etc/passwd"},
		{name: "numbers with the isolation gid", want: Want{Name: "5000", GID: 64999}, wantAcct: Account{UID: 5000, GID: 64999}},
		{name: "numbers agreeing with it", want: Want{Name: "5000:64999", GID: 64999}, wantAcct: Account{UID: 5000, GID: 64999}},
		{name: "numbers without isolation", want: Want{Name: "5000:5001"}, wantAcct: Account{UID: 5000, GID: 5001}},
		{name: "numbers against isolation", want: Want{Name: "5000:5001", GID: 64999}, wantErr: "must be isolation_gid (64999)"},
		{name: "a uid alone without isolation", want: Want{Name: "5000"}, wantErr: "give the group too"},
		{name: "uid 0", want: Want{Name: "0:5001"}, wantErr: "must not run as root"},
		{name: "gid 0", want: Want{Name: "5000:0"}, wantErr: "must not run as root"},
		{name: "root by name", want: Want{Name: "root", GID: 64999}, wantErr: "must not run as root"},
		{name: "uid 0 by another name", want: Want{Name: "toor", GID: 64999}, wantErr: "must not run as root"},
		{name: "a name that reads as an option", want: Want{Name: "--help"}, wantErr: "want a user name"},
		{name: "empty", want: Want{Name: ""}, wantErr: "want a user name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sys := &fakeSystem{users: map[string]user.User{}, groups: map[string]string{}, failAdd: tt.failAdd, raceAdd: tt.raceAdd}
			for k, v := range existing {
				sys.users[k] = v
			}
			for k, v := range tt.groups {
				sys.groups[k] = v
			}
			got, err := Ensure(context.Background(), sys, tt.want)
			if !slices.Equal(sys.ran, tt.wantRan) {
				t.Errorf("ran %q, want %q", sys.ran, tt.wantRan)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Ensure() = %+v, %v; want an error with %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.wantAcct {
				t.Fatalf("Ensure() = %+v, %v; want %+v", got, err, tt.wantAcct)
			}
		})
	}
}

// TestHostLooksUpRoot keeps the real System honest about the shapes the
// fake assumes.
func TestHostLooksUpRoot(t *testing.T) {
	u, err := Host{}.LookupUser("root")
	if err != nil || u.Uid != "0" {
		t.Fatalf("LookupUser(root) = %+v, %v", u, err)
	}
	_, err = Host{}.LookupUser("solstice-no-such-user-" + strconv.Itoa(12345))
	if !errors.As(err, new(user.UnknownUserError)) {
		t.Fatalf("an unknown user: %v, want user.UnknownUserError", err)
	}
	if err := (Host{}).Run(context.Background(), "false"); err == nil || !strings.Contains(err.Error(), "false") {
		t.Fatalf("Run(false) = %v", err)
	}
}
