//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"os"
	"syscall"
)

// unlock drops the flock bbolt took on f. Closing f is not enough: the memory mapping of a
// DB whose open panicked keeps the file, and with it the lock, alive.
func unlock(f *os.File) {
	_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
}
