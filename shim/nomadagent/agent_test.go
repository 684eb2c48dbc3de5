package nomadagent

import (
	"reflect"
	"testing"
)

func TestMountsUnder(t *testing.T) {
	info := `22 1 8:1 / / rw - ext4 /dev/vda rw
100 22 0:50 / /tmp/n/alloc/a1/t/secrets rw - tmpfs tmpfs rw
101 22 0:51 / /tmp/n/alloc/a1/t/private rw - tmpfs tmpfs rw
102 22 0:52 / /tmp/nomad-other/x rw - tmpfs tmpfs rw
`
	got := mountsUnder(info, "/tmp/n")
	want := []string{"/tmp/n/alloc/a1/t/private", "/tmp/n/alloc/a1/t/secrets"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("mountsUnder = %v, want %v (deepest first, siblings of /tmp/n excluded)", got, want)
	}
}
