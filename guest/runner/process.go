package runner

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/solstice-ci/solstice/internal/contract"
)

// groupSignal names the signals the runner sends to a step's process group.
type groupSignal int

const (
	sigCheck     groupSignal = iota // does the group still exist?
	sigInterrupt                    // SIGINT: what Ctrl-C would send
	sigTerminate                    // SIGTERM
	sigKill                         // SIGKILL
)

// procSpec is a process to run for a step.
type procSpec struct {
	path string
	args []string
	dir  string
	env  []string
}

// runProcess runs spec in its own process group, streaming its output to
// out, until it exits or ctx is done; then it terminates the group the way
// the runner does (SIGINT, SIGTERM, SIGKILL) and kills what is left of it.
// It returns the exit code, or an error if the process could not start.
func (j *Job) runProcess(ctx context.Context, spec procSpec, out *output) (int, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return 0, fmt.Errorf("create stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		outR.Close()
		outW.Close()
		return 0, fmt.Errorf("create stderr pipe: %w", err)
	}
	cmd := exec.Command(spec.path, spec.args...)
	cmd.Dir, cmd.Env = spec.dir, spec.env
	cmd.Stdout, cmd.Stderr = outW, errW // files: no copying goroutines, Wait returns at exit
	setProcessGroup(cmd)
	err = cmd.Start()
	outW.Close()
	errW.Close()
	if err != nil {
		outR.Close()
		errR.Close()
		return 0, fmt.Errorf("An error occurred trying to start process '%s' with working directory '%s'. %w", spec.path, spec.dir, err)
	}
	pgid := cmd.Process.Pid
	j.trackGroup(pgid)
	readers := startReaders(out, outR, errR)
	waited := make(chan struct{})
	go func() { cmd.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
		j.terminate(pgid, waited)
		signalGroup(pgid, sigKill) // the rest of a cancelled step goes with it
	}
	readers.finish(j.timing.Drain)
	return exitCodeOf(cmd.ProcessState), nil
}

// terminate asks the group to stop, harder after each grace period, until
// its leader has exited.
func (j *Job) terminate(pgid int, waited <-chan struct{}) {
	steps := []struct {
		sig   groupSignal
		grace time.Duration
	}{{sigInterrupt, j.timing.Interrupt}, {sigTerminate, j.timing.Terminate}}
	for _, st := range steps {
		signalGroup(pgid, st.sig)
		select {
		case <-waited:
			return
		case <-time.After(st.grace):
		}
	}
	signalGroup(pgid, sigKill)
	<-waited
}

func (j *Job) trackGroup(pgid int) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.groups = append(j.groups, pgid)
}

// killOrphans kills the process groups of earlier steps that are still
// alive (daemons a step left behind), as the runner's orphan process
// clean-up does at the end of a job.
func (j *Job) killOrphans() {
	j.mu.Lock()
	groups := j.groups
	j.mu.Unlock()
	announced := false
	for _, g := range groups {
		if signalGroup(g, sigCheck) != nil {
			continue
		}
		if !announced {
			j.system(contract.JobLevel, "Cleaning up orphan processes")
			announced = true
		}
		signalGroup(g, sigKill)
	}
}

// pipeReaders read a process's stdout and stderr into its output.
type pipeReaders struct {
	files []*os.File
	done  chan struct{}
}

func startReaders(out *output, stdout, stderr *os.File) *pipeReaders {
	p := &pipeReaders{files: []*os.File{stdout, stderr}, done: make(chan struct{})}
	var wg sync.WaitGroup
	for i, f := range p.files {
		stream := []string{contract.Stdout, contract.Stderr}[i]
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := out.splitter(stream)
			buf := make([]byte, 32<<10)
			for {
				n, err := f.Read(buf)
				s.Write(buf[:n])
				if err != nil {
					break
				}
			}
			s.Close()
		}()
	}
	go func() { wg.Wait(); close(p.done) }()
	return p
}

// finish waits for the output to end. Something the shell started may
// keep the pipes open after it exited; like the runner, give it drain and
// then stop reading.
func (p *pipeReaders) finish(drain time.Duration) {
	select {
	case <-p.done:
	case <-time.After(drain):
		for _, f := range p.files {
			f.Close() // unblocks the pending Read
		}
		<-p.done
	}
	for _, f := range p.files {
		f.Close()
	}
}
