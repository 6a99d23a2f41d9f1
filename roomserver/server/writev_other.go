//go:build !linux

package server

import "syscall"

// writev is not used here: a would-block answer has the writer goroutine send the batch.
func writev(fd uintptr, bufs [][]byte) (int, error) { return 0, syscall.EAGAIN }
