//go:build !(linux && (amd64 || arm64))

package ioctl

// The struct mirrors in abi.go assume LP64 little-endian Linux. Building this
// package elsewhere fails here, with a name that says why.
var _ = ihkIoctlBackendNeedsLinuxAmd64OrArm64
