package main

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuSampler measures a process's CPU share between its creation and stop, the part of it
// spent in the kernel, and its peak RSS, from /proc (Linux).
type cpuSampler struct {
	pid     int
	ticks0  cpuTicks
	start   time.Time
	peakRSS uint64
	done    chan struct{}
	stopped chan struct{}
}

const clockTicks = 100 // USER_HZ on Linux

func newCPUSampler(pid int) (*cpuSampler, error) {
	t, err := procTicks(pid)
	if err != nil {
		return nil, err
	}
	s := &cpuSampler{pid: pid, ticks0: t, start: time.Now(), done: make(chan struct{}), stopped: make(chan struct{})}
	go s.sampleRSS()
	return s, nil
}

func (s *cpuSampler) sampleRSS() {
	defer close(s.stopped)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		if r, err := procRSS(s.pid); err == nil {
			s.peakRSS = max(s.peakRSS, r)
		}
		select {
		case <-s.done:
			return
		case <-t.C:
		}
	}
}

// usage is what a cpuSampler measured: CPU as % of one core, the part of it in the kernel
// (system calls, and on loopback the receiving side of what the process sends), peak RSS.
type usage struct {
	cpuPct, sysPct, rssMB float64
}

// stop returns the usage over the sampled window.
func (s *cpuSampler) stop() (usage, error) {
	close(s.done)
	<-s.stopped
	t, err := procTicks(s.pid)
	if err != nil {
		return usage{}, err
	}
	pct := func(ticks uint64) float64 {
		return round(float64(ticks) / clockTicks / time.Since(s.start).Seconds() * 100)
	}
	return usage{
		cpuPct: pct(t.user + t.sys - s.ticks0.user - s.ticks0.sys),
		sysPct: pct(t.sys - s.ticks0.sys),
		rssMB:  round(float64(s.peakRSS) / 1e6),
	}, nil
}

// cpuTicks is a process's CPU time in clock ticks, in user space and in the kernel.
type cpuTicks struct{ user, sys uint64 }

// procTicks returns utime and stime of pid.
func procTicks(pid int) (cpuTicks, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuTicks{}, fmt.Errorf("failed to read process stats: %w", err)
	}
	// Fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return cpuTicks{}, fmt.Errorf("failed to parse /proc/%d/stat", pid)
	}
	u, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return cpuTicks{}, fmt.Errorf("failed to parse /proc/%d/stat", pid)
	}
	return cpuTicks{user: u, sys: st}, nil
}

// procRSS returns the resident set size of pid in bytes.
func procRSS(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for process %d", pid)
}
