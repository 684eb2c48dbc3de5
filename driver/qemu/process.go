package qemu

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Process names one QEMU process across plugin restarts. A pid alone is not
// enough: after a reboot or a long uptime the kernel hands the same pid to
// another program, and adopting or killing that one would be a disaster. The
// start time (in clock ticks since boot, from /proc/<pid>/stat) pins it.
type Process struct {
	PID       int    `codec:"pid"`
	StartTime uint64 `codec:"start_time"`
}

// ErrGone means the process has exited or the pid now belongs to another.
var ErrGone = errors.New("qemu: process is gone")

// Identify reads the start time of a live pid.
func Identify(pid int) (Process, error) {
	st, err := readStat(pid)
	if err != nil {
		return Process{}, err
	}
	if st.state == "Z" {
		return Process{}, fmt.Errorf("identify pid %d: %w (zombie)", pid, ErrGone)
	}
	return Process{PID: pid, StartTime: st.startTime}, nil
}

// Alive reports whether this very process still runs (a zombie does not).
func (p Process) Alive() bool {
	st, err := readStat(p.PID)
	return err == nil && st.startTime == p.StartTime && st.state != "Z"
}

// Signal sends sig only if the pid still names this process.
func (p Process) Signal(sig syscall.Signal) error {
	if !p.Alive() {
		return ErrGone
	}
	if err := syscall.Kill(p.PID, sig); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return ErrGone
		}
		return fmt.Errorf("signal qemu pid %d: %w", p.PID, err)
	}
	return nil
}

// CPUTicks returns user and system time in clock ticks, for task stats.
func (p Process) CPUTicks() (user, system uint64, err error) {
	st, err := readStat(p.PID)
	if err != nil {
		return 0, 0, err
	}
	if st.startTime != p.StartTime {
		return 0, 0, ErrGone
	}
	return st.utime, st.stime, nil
}

// RSS returns the resident set size in bytes.
func (p Process) RSS() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", p.PID))
	if err != nil {
		return 0, ErrGone
	}
	fields := strings.Fields(string(data))
	if len(fields) < 2 {
		return 0, fmt.Errorf("parse /proc/%d/statm: %q", p.PID, data)
	}
	pages, err := strconv.ParseUint(fields[1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/statm: %w", p.PID, err)
	}
	return pages * uint64(os.Getpagesize()), nil
}

type procStat struct {
	state     string
	utime     uint64
	stime     uint64
	startTime uint64
}

func readStat(pid int) (procStat, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, fmt.Errorf("read stat of pid %d: %w", pid, ErrGone)
	}
	return parseStat(string(data))
}

// parseStat reads /proc/<pid>/stat. The command name (field 2) is in
// parentheses and may itself contain spaces and parentheses, so fields are
// counted from the last ')'.
func parseStat(s string) (procStat, error) {
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return procStat{}, fmt.Errorf("parse proc stat %q: no command name", s)
	}
	f := strings.Fields(s[end+1:])
	// f[0] is field 3 (state); utime, stime and starttime are 14, 15, 22.
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("parse proc stat: %d fields after the name", len(f))
	}
	var st procStat
	st.state = f[0]
	var err error
	for _, x := range []struct {
		dst *uint64
		idx int
	}{{&st.utime, 11}, {&st.stime, 12}, {&st.startTime, 19}} {
		if *x.dst, err = strconv.ParseUint(f[x.idx], 10, 64); err != nil {
			return procStat{}, fmt.Errorf("parse proc stat field %d: %w", x.idx+3, err)
		}
	}
	return st, nil
}
