package journal

import (
	"crypto/sha256"
	"syscall"
)

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

func errNotDir() error { return syscall.ENOTDIR }
