package server

import "golang.org/x/sys/unix"

// writev is one writev(2) of bufs to a non-blocking descriptor.
func writev(fd uintptr, bufs [][]byte) (int, error) {
	if len(bufs) > 1024 { // IOV_MAX: the rest goes on the next write
		bufs = bufs[:1024]
	}
	return unix.Writev(int(fd), bufs)
}
