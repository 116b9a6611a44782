package lwkmode

// NUMAPolicy says where LWK memory may come from.
type NUMAPolicy string

// NUMA policies.
const (
	// NUMAStrict: memory only on the NUMA nodes of the LWK CPUs (or, on a
	// split node, the job NUMA nodes nearest to them); fail when short.
	NUMAStrict NUMAPolicy = "strict"
	// NUMANear: when the nearest nodes are short, take the rest from the
	// next-nearest job NUMA nodes by distance.
	NUMANear NUMAPolicy = "near"
)

// Memory is the mem= value: either an absolute size or a percentage of the
// job's memory on the node. The zero value means "not given".
type Memory struct {
	// Bytes is an absolute size. Units: bytes.
	Bytes uint64
	// Percent is a share of the job's memory, 1..100.
	Percent int
}

// IsZero reports whether mem= was not given.
func (m Memory) IsZero() bool { return m.Bytes == 0 && m.Percent == 0 }

// Request is a parsed --lwk-mode specification.
type Request struct {
	// Off is true for "off": run on Linux.
	Off bool
	// Profile is the profile name; empty means the node's default profile
	// (a bare --lwk-mode).
	Profile string
	// Memory is mem=; zero means the node's default share.
	Memory Memory
	// Cores is cores=: how many of the job's cores go to the LWK; 0 means all
	// the job's cores.
	Cores int
	// NUMA is numa=; empty means NUMAStrict.
	NUMA NUMAPolicy
	// Kargs are the extra kernel arguments from kargs=, in the order given.
	Kargs []string
}
