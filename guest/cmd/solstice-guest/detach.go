package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	"github.com/solstice-ci/solstice/guest/runner"
)

// detach re-executes the agent in a new session (so it survives the SSH
// session that started it), hands it the secrets through a pipe, and
// waits until it reports that the job has started.
func detach(f runFlags, secrets []byte, stderr io.Writer) int {
	if err := startDetached(f, secrets, nil); err != nil {
		fmt.Fprintf(stderr, "solstice-guest: detach: %v\n", err)
		return runner.ExitInfrastructure
	}
	return runner.ExitSuccess
}

// startDetached starts the detached job; as, when set, makes its command
// run as another user (serve, root, starts a clone's job as the login
// user).
func startDetached(f runFlags, secrets []byte, as func(*exec.Cmd)) error {
	layout := runner.NewLayout(f.root)
	if err := os.MkdirAll(layout.Root, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", layout.Root, err)
	}
	logFile, err := os.OpenFile(layout.Log, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open %s: %w", layout.Log, err)
	}
	defer logFile.Close()
	child, err := spawnChild(f, logFile, as)
	if err != nil {
		return err
	}
	return child.Start(secrets)
}

// startWord is what a detached child waits for on its stdin before the
// secrets: a child started ahead of its job (see serve) that is never
// given one sees its stdin end without it, and exits without a job.
const startWord = "start\n"

// Start hands the waiting child its secrets and waits until it reports
// that the job has started.
func (c *child) Start(secrets []byte) error {
	defer c.ready.Close()
	go func() {
		// A pipe, not a file: the secrets touch no disk.
		c.secrets.Write(append([]byte(startWord), secrets...))
		c.secrets.Close()
	}()
	err := awaitReady(c.ready, "the agent exited before the job started (see "+c.log+")")
	c.cmd.Process.Release()
	return err
}

// A detached child tells its parent on a pipe (its fd 3) that it has
// started: "ok", or "error: " and why; nothing means it died first.

// reportReady is the child's side: it answers and closes the pipe.
func reportReady(ready *os.File, err error) {
	if err != nil {
		fmt.Fprintf(ready, "error: %v\n", err)
	} else {
		fmt.Fprintln(ready, "ok")
	}
	ready.Close()
}

// awaitReady is the parent's side: it reads the answer until the child
// closes the pipe, and returns the child's error, or died when it said
// nothing.
func awaitReady(ready io.Reader, died string) error {
	msg, _ := io.ReadAll(ready) // EOF when the child reported or died
	switch reply := strings.TrimSpace(string(msg)); {
	case reply == "ok":
		return nil
	case reply == "":
		return errors.New(died)
	default:
		return errors.New(strings.TrimPrefix(reply, "error: "))
	}
}

// Cancel ends a child that was never started.
func (c *child) Cancel() {
	c.cmd.Process.Kill()
	c.secrets.Close()
	c.ready.Close()
	go c.cmd.Wait()
}

// child is a started detached agent and the parent's ends of its pipes.
type child struct {
	cmd     *exec.Cmd
	ready   *os.File // the child's fd 3: "ok" or "error: …"
	secrets *os.File // the child's stdin
	log     string   // where its stderr goes
}

func spawnChild(f runFlags, logFile *os.File, as func(*exec.Cmd)) (*child, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find own executable: %w", err)
	}
	readyR, readyW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	secretsR, secretsW, err := os.Pipe()
	if err != nil {
		readyR.Close()
		readyW.Close()
		return nil, err
	}
	cmd := exec.Command(exe, detachedChild, "--root", f.root, f.plan)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = secretsR, nil, logFile
	cmd.ExtraFiles = []*os.File{readyW} // fd 3
	newSession(cmd)
	if as != nil {
		as(cmd)
	}
	err = cmd.Start()
	readyW.Close() // the child holds its own copies now
	secretsR.Close()
	if err != nil {
		readyR.Close()
		secretsW.Close()
		return nil, fmt.Errorf("start: %w", err)
	}
	return &child{cmd: cmd, ready: readyR, secrets: secretsW, log: logFile.Name()}, nil
}
