//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package store

import "os"

// unlock does nothing where bbolt's lock is not a flock (it goes with the file handle).
func unlock(*os.File) {}
