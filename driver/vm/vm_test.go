package vm

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/solstice-ci/solstice/driver/qemu"
)

// scripted is a Machine whose guest answers the power button as told.
type scripted struct {
	obeys    bool  // the guest powers off when the button is pressed
	powerErr error // pressing the button fails

	exited  chan struct{}
	once    sync.Once
	mu      sync.Mutex
	pressed bool
	killed  bool
}

func newScripted(obeys bool, powerErr error) *scripted {
	return &scripted{obeys: obeys, powerErr: powerErr, exited: make(chan struct{})}
}

func (m *scripted) exit() { m.once.Do(func() { close(m.exited) }) }

func (m *scripted) Process() qemu.Process   { return qemu.Process{} }
func (m *scripted) Exited() <-chan struct{} { return m.exited }
func (m *scripted) ExitCode() int           { <-m.exited; return 0 }
func (m *scripted) Close()                  {}

func (m *scripted) PowerDown(context.Context) error {
	m.mu.Lock()
	m.pressed = true
	m.mu.Unlock()
	if m.powerErr != nil {
		return m.powerErr
	}
	if m.obeys {
		go m.exit()
	}
	return nil
}

func (m *scripted) Kill() {
	m.mu.Lock()
	m.killed = true
	m.mu.Unlock()
	m.exit()
}

func TestShutdown(t *testing.T) {
	tests := []struct {
		name        string
		m           *scripted
		gone        bool // the VM exited before Shutdown
		cancelled   bool // the caller's context is already done
		timeout     time.Duration
		wantClean   bool
		wantPressed bool
		wantKilled  bool
		minTook     time.Duration
	}{
		{name: "already gone", m: newScripted(true, nil), gone: true, timeout: time.Minute, wantClean: true},
		{name: "guest powers off", m: newScripted(true, nil), timeout: time.Minute, wantClean: true, wantPressed: true},
		{name: "guest ignores the button", m: newScripted(false, nil), timeout: 200 * time.Millisecond,
			wantPressed: true, wantKilled: true, minTook: 200 * time.Millisecond},
		{name: "button cannot be pressed", m: newScripted(false, ErrNoControl), timeout: time.Minute,
			wantPressed: true, wantKilled: true},
		{name: "caller gives up", m: newScripted(false, nil), cancelled: true, timeout: time.Minute,
			wantPressed: true, wantKilled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.gone {
				tt.m.exit()
			}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tt.cancelled {
				cancel()
			}
			start := time.Now()
			clean := Shutdown(ctx, tt.m, tt.timeout)
			took := time.Since(start)
			if clean != tt.wantClean || tt.m.pressed != tt.wantPressed || tt.m.killed != tt.wantKilled {
				t.Errorf("clean %v, pressed %v, killed %v; want %v, %v, %v",
					clean, tt.m.pressed, tt.m.killed, tt.wantClean, tt.wantPressed, tt.wantKilled)
			}
			if took < tt.minTook || took > 10*time.Second {
				t.Errorf("took %s, want at least %s", took, tt.minTook)
			}
		})
	}
}

// cmdGuest answers the power-off command as told.
type cmdGuest struct {
	Guest
	m     *scripted
	takes bool  // the guest powers off on the command
	err   error // running the command fails
	ran   string
}

func (g *cmdGuest) PowerOff(_ context.Context, command string) error {
	g.ran = command
	if g.err == nil && g.takes {
		go g.m.exit()
	}
	return g.err
}

func TestStopTriesTheCommandFirst(t *testing.T) {
	tests := []struct {
		name        string
		command     string
		takes       bool
		err         error
		obeysACPI   bool
		wantClean   bool
		wantPressed bool
		wantKilled  bool
		wantRan     string
	}{
		{"command works, ACPI ignored", "poweroff", true, nil, false, true, false, false, "poweroff"},
		{"command fails, ACPI works", "poweroff", false, errors.New("no sshd"), true, true, true, false, "poweroff"},
		{"no command: ACPI only", "", false, nil, true, true, true, false, ""},
		{"neither works: killed", "poweroff", false, nil, false, false, true, true, "poweroff"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := newScripted(tc.obeysACPI, nil)
			g := &cmdGuest{m: m, takes: tc.takes, err: tc.err}
			clean := Stop(context.Background(), m, g, tc.command, 200*time.Millisecond)
			if clean != tc.wantClean || m.pressed != tc.wantPressed || m.killed != tc.wantKilled || g.ran != tc.wantRan {
				t.Errorf("clean %v pressed %v killed %v ran %q", clean, m.pressed, m.killed, g.ran)
			}
		})
	}
}

func TestPowerOffScriptQuotes(t *testing.T) {
	got := PowerOffScript("shutdown -y -i5 -g0; echo 'x'")
	want := `if [ "$(id -u)" = 0 ]; then exec sh -c 'shutdown -y -i5 -g0; echo '\''x'\'''; else exec sudo -n sh -c 'shutdown -y -i5 -g0; echo '\''x'\'''; fi`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	out, err := exec.Command("sh", "-c", strings.Replace(got, "exec sh -c", "exec echo", 1)).Output()
	if err == nil && os.Getuid() == 0 && string(out) != "shutdown -y -i5 -g0; echo 'x'\n" {
		t.Errorf("as root the command reads back as %q", out)
	}
}
