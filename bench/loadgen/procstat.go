package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// userHZ is the unit of the CPU times in /proc/<pid>/stat. It is 100 on
// every Linux this tool is meant for (reading it properly needs cgo).
const userHZ = 100

// processCPU returns the user+system CPU time a process has used so far,
// from /proc/<pid>/stat (Linux only).
func processCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("reading CPU time of pid %d: %w", pid, err)
	}
	// The command name (field 2) may contain spaces; fields after it are fixed.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: no command name", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("parsing /proc/%d/stat: %d fields", pid, len(f))
	}
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	utime, err := strconv.ParseInt(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing utime of pid %d: %w", pid, err)
	}
	stime, err := strconv.ParseInt(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parsing stime of pid %d: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

// cpuMeter measures a process's CPU time over a phase of the run. A zero
// pid measures nothing.
type cpuMeter struct {
	pid   int
	start time.Duration
	err   error
}

func startCPU(pid int) *cpuMeter {
	m := &cpuMeter{pid: pid}
	if pid > 0 {
		m.start, m.err = processCPU(pid)
	}
	return m
}

// stop returns the CPU time used since startCPU, or an error.
func (m *cpuMeter) stop() (time.Duration, error) {
	if m.pid <= 0 {
		return 0, nil
	}
	if m.err != nil {
		return 0, m.err
	}
	end, err := processCPU(m.pid)
	if err != nil {
		return 0, err
	}
	return end - m.start, nil
}
