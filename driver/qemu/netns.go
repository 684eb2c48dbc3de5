package qemu

import (
	"fmt"
	"os"
	"os/exec"
	"runtime"

	"golang.org/x/sys/unix"
)

// startIn starts cmd inside the network namespace at nsPath ("" for this
// process's own).
//
// Entering a namespace (setns) needs CAP_SYS_ADMIN, which QEMU, running as
// its own unprivileged user, never has. So this process enters it on one
// locked OS thread and forks QEMU from there: a child starts in the
// namespaces of the thread that forks it, and switches to its user
// (SysProcAttr.Credential) after that, just before exec. The pid is QEMU's,
// with no nsenter or helper in between. The thread stays locked, so the
// runtime discards it when this goroutine ends and no other goroutine ever
// runs in the allocation's namespace (isolation.DialInNetns does the same).
func startIn(cmd *exec.Cmd, nsPath string) error {
	if nsPath == "" {
		return cmd.Start()
	}
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		errc <- setnsAndStart(cmd, nsPath)
	}()
	return <-errc
}

func setnsAndStart(cmd *exec.Cmd, nsPath string) error {
	ns, err := os.Open(nsPath)
	if err != nil {
		return fmt.Errorf("open network namespace %s: %w", nsPath, err)
	}
	defer ns.Close()
	if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("enter network namespace %s: %w", nsPath, err)
	}
	return cmd.Start()
}
