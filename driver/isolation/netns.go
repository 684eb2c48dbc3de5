package isolation

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"

	"golang.org/x/sys/unix"
)

// DialInNetns opens a TCP connection from inside the network namespace at
// nsPath (an allocation's, under bridge networking). A socket belongs to the
// namespace it was created in, so the connection keeps working after this
// thread returns to the host's namespace.
func DialInNetns(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is switched to another namespace; locking it and never
		// unlocking makes the runtime throw it away rather than reuse it.
		runtime.LockOSThread()
		c, err := dialFromThread(ctx, nsPath, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

func dialFromThread(ctx context.Context, nsPath, addr string) (net.Conn, error) {
	target, err := os.Open(nsPath)
	if err != nil {
		return nil, fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		return nil, fmt.Errorf("enter network namespace %s: %w", nsPath, err)
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", addr)
}
