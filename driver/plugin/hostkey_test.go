package plugin

import (
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	diskfs "github.com/diskfs/go-diskfs"
	"github.com/hashicorp/nomad/plugins/drivers"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/solstice-ci/solstice/driver/guestssh"
	"github.com/solstice-ci/solstice/driver/task"
)

// seedHostKey reads the ssh_keys the task's seed gives its guest.
func seedHostKey(t *testing.T, seed string) (private, public string) {
	t.Helper()
	var doc struct {
		SSHKeys map[string]string `yaml:"ssh_keys"`
	}
	if err := yaml.Unmarshal(seedFile(t, seed, "user-data"), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.SSHKeys["ed25519_private"], doc.SSHKeys["ed25519_public"]
}

// seedFile reads one file of a seed volume (ISO or FAT).
func seedFile(t *testing.T, seed, name string) []byte {
	t.Helper()
	d, err := diskfs.Open(seed, diskfs.WithOpenMode(diskfs.ReadOnly))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	fsys, err := d.GetFilesystem(0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.OpenFile("/"+name, os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// assertHostKeyPinned checks the host-key flow of a started task: the seed
// gives the guest an ed25519 host key, the task state holds its public
// half, the first login already insists on it, and the private half is
// nowhere but in the seed.
func assertHostKeyPinned(t *testing.T, cfg *drivers.TaskConfig, st task.State, first guestssh.Target) {
	t.Helper()
	private, public := seedHostKey(t, st.Seed)
	signer, err := ssh.ParsePrivateKey([]byte(private))
	if err != nil {
		t.Fatalf("the seed's host key: %v", err)
	}
	seedPub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(public))
	if err != nil {
		t.Fatal(err)
	}
	pin := signer.PublicKey().Marshal()
	switch {
	case signer.PublicKey().Type() != ssh.KeyAlgoED25519:
		t.Errorf("host key type %s, want ed25519", signer.PublicKey().Type())
	case !bytes.Equal(seedPub.Marshal(), pin):
		t.Error("the seed's ed25519_public is not its private key's")
	case !bytes.Equal(st.HostKey, pin):
		t.Error("the task state does not pin the seed's host key")
	case !bytes.Equal(first.HostKey, pin):
		t.Error("the first login does not insist on the seed's host key")
	}
	// Any line of the private key's body past the generic OpenSSH header,
	// in any file of the allocation other than the seed, would be a copy
	// that outlives its purpose.
	lines := strings.Split(strings.TrimSpace(private), "\n")
	distinct := lines[2 : len(lines)-1]
	filepath.WalkDir(cfg.AllocDir, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.IsDir() || p == st.Seed {
			return err
		}
		data, _ := os.ReadFile(p)
		for _, l := range distinct {
			if bytes.Contains(data, []byte(l)) {
				t.Errorf("the guest's private host key is also in %s", p)
				break
			}
		}
		return nil
	})
}

// TestRecoverKeepsThePinnedHostKey: a recovered task logs in with the host
// key its state pinned at start, never trusting whatever answers.
func TestRecoverKeepsThePinnedHostKey(t *testing.T) {
	before := newHarness(t, &fakeVMs{})
	_, th := before.start(TaskConfig{Image: "omnios"})
	stored := driverState(t, th)
	if len(stored.HostKey) == 0 {
		t.Fatal("no host key in the stored state")
	}
	if bytes.Contains(th.DriverState, []byte("PRIVATE KEY")) {
		t.Error("the stored driver state holds a private key")
	}
	vms := &fakeVMs{}
	after := newHarness(t, vms)
	if err := after.d.RecoverTask(th.Copy()); err != nil {
		t.Fatal(err)
	}
	if len(vms.guests) != 1 {
		t.Fatalf("%d guests made on recovery, want 1", len(vms.guests))
	}
	login, err := vms.guests[0].login()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(login.HostKey, stored.HostKey) {
		t.Error("the recovered task's login does not insist on the stored host key")
	}
}

// mustPublicKey is a private key's authorized_keys line, without comment.
func mustPublicKey(t *testing.T, privatePEM []byte) []byte {
	t.Helper()
	signer, err := ssh.ParsePrivateKey(privatePEM)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.TrimSpace(ssh.MarshalAuthorizedKey(signer.PublicKey()))
}
