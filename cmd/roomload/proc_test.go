package main

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// The sampler splits a process's CPU into user space and kernel: a loop of system calls
// shows up as kernel time, within the total.
func TestCPUSamplerSplitsKernelTime(t *testing.T) {
	s, err := newCPUSampler(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(500 * time.Millisecond); time.Now().Before(end); {
		for range 1000 {
			syscall.Getppid()
		}
	}
	u, err := s.stop()
	if err != nil {
		t.Fatal(err)
	}
	if u.cpuPct < 20 || u.sysPct <= 0 || u.sysPct > u.cpuPct || u.rssMB <= 0 {
		t.Fatalf("busy in system calls for 0.5 s: CPU %.1f%%, kernel %.1f%%, RSS %.1f MB", u.cpuPct, u.sysPct, u.rssMB)
	}
}
