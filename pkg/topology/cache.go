package topology

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"k8s.io/utils/cpuset"

	"github.com/slurm-lwk/slurm-lwk/pkg/atomicfile"
	"github.com/slurm-lwk/slurm-lwk/pkg/sysfs"
)

// CacheFileName is the layout cache's file name in the lifecycle's
// StateDir.
const CacheFileName = "topology.cache"

// cacheVersion is the format of the layout cache file.
const cacheVersion = 1

// maxCacheBytes bounds the cache file (a 1024-CPU node's is about 40 KiB).
const maxCacheBytes = 8 << 20

// bootIDPath identifies the running kernel boot. It is read from the real
// /proc even for a fixture root: a reboot must drop every cached layout.
const bootIDPath = "/proc/sys/kernel/random/boot_id"

// CacheResult says how ReadLayoutCached got the layout.
type CacheResult int

// How ReadLayoutCached got the layout.
const (
	// CacheHit: the layout came from the cache file, memory from sysfs.
	CacheHit CacheResult = iota
	// CacheMiss: no usable cache (absent, stale, unsafe or corrupt); the
	// layout was read from sysfs and the cache rewritten.
	CacheMiss
)

// ReadLayoutCached returns what ReadLayout(root) returns, but takes the
// parts that do not change between jobs from cacheFile when its key still
// matches the machine, and rewrites the file when it does not.
//
// What is cached: every CPU's core, socket, NUMA node and online state,
// every node's CPU list and distances, and which online nodes are empty.
// What is always read fresh: every node's meminfo (MemTotal, MemFree), and
// the key. The key is the kernel's boot ID, the absolute sysfs root, and
// the contents of cpu/present, cpu/online, node/online, node/has_cpu and
// node/has_memory: a reboot, a CPU hot-(un)plug or offlining (IHK offlines
// the CPUs it reserves), or a node gaining or losing CPUs or memory changes
// the key, so the layout is read again. A node whose memory appears or
// disappears without has_memory changing (which the kernel does not do)
// would still be caught: the fresh meminfo must agree with the cached node
// set, or the layout is read again.
//
// A cacheFile that is empty or not absolute means no cache: ReadLayout.
// The cache file must be a regular file owned by the effective user and
// writable by nobody else; anything else is ignored and replaced. Failing
// to write the cache is not an error (the layout is still returned): the
// next call reads sysfs again.
func ReadLayoutCached(root, cacheFile string) (*Topology, CacheResult, error) {
	if cacheFile == "" || !filepath.IsAbs(cacheFile) {
		t, err := read(root, false)
		return t, CacheMiss, err
	}
	f, err := sysfs.New(root)
	if err != nil {
		return nil, CacheMiss, fmt.Errorf("read topology: %w", err)
	}
	key, err := cacheKey(f)
	if err != nil {
		return nil, CacheMiss, fmt.Errorf("read topology from %s: %w", f.Root(), err)
	}
	if t, ok := loadCache(cacheFile, key); ok {
		if ok, err := refreshMemory(f, t); err != nil {
			return nil, CacheMiss, fmt.Errorf("read topology from %s: %w", f.Root(), err)
		} else if ok {
			return t, CacheHit, nil
		}
	}
	t, err := read(root, false)
	if err != nil {
		return nil, CacheMiss, err
	}
	_ = storeCache(cacheFile, key, t)
	return t, CacheMiss, nil
}

// cacheKey reads what identifies the layout.
func cacheKey(f sysfs.FS) (string, error) {
	var b strings.Builder
	boot, err := os.ReadFile(bootIDPath)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", fmt.Errorf("read %s: %w", bootIDPath, err)
	}
	fmt.Fprintf(&b, "boot=%s root=%s", strings.TrimSpace(string(boot)), f.Root())
	for _, rel := range []string{"cpu/present", "cpu/online", "node/online", "node/has_cpu", "node/has_memory"} {
		v, err := os.ReadFile(f.Path("sys/devices/system", rel))
		switch {
		case errors.Is(err, fs.ErrNotExist):
			fmt.Fprintf(&b, " %s=-", rel)
		case err != nil:
			return "", fmt.Errorf("read %s: %w", f.Path("sys/devices/system", rel), err)
		default:
			fmt.Fprintf(&b, " %s=%s", rel, strings.TrimSpace(string(v)))
		}
	}
	return b.String(), nil
}

// refreshMemory reads every cached node's meminfo into t. It returns false
// when the memory no longer fits the cached node set: a cached node that
// now has neither CPUs nor memory, or an empty node that has memory now.
func refreshMemory(f sysfs.FS, t *Topology) (bool, error) {
	for i := range t.Nodes {
		n := &t.Nodes[i]
		mi, err := f.NodeMemInfo(n.ID)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if n.CPUs.IsEmpty() && mi.TotalBytes == 0 {
			return false, nil
		}
		n.MemTotalBytes, n.MemFreeBytes = mi.TotalBytes, mi.FreeBytes
	}
	for _, id := range t.EmptyNodes {
		mi, err := f.NodeMemInfo(id)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		if mi.TotalBytes != 0 {
			return false, nil
		}
	}
	return true, nil
}

// cacheFileData is the cache file's JSON. CPUs are [id, core, socket,
// node, online(0/1)] to keep a 1024-CPU layout small and quick to decode.
type cacheFileData struct {
	Version int         `json:"version"`
	Key     string      `json:"key"`
	CPUs    [][5]int    `json:"cpus"`
	Nodes   []cacheNode `json:"nodes"`
	Empty   []int       `json:"empty_nodes,omitempty"`
}

type cacheNode struct {
	ID        int      `json:"id"`
	CPUs      string   `json:"cpus"`
	Distances [][2]int `json:"distances"`
}

// loadCache returns the cached layout if the file is safe, well-formed and
// carries key.
func loadCache(path, key string) (*Topology, bool) {
	fh, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, false
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o022 != 0 {
		return nil, false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || int(st.Uid) != os.Geteuid() {
		return nil, false
	}
	id := cacheIdentity{path: path, key: key, dev: st.Dev, ino: st.Ino, size: st.Size, mtime: st.Mtim, ctime: st.Ctim}
	if t := decoded.get(id); t != nil {
		return t, true
	}
	data, err := io.ReadAll(io.LimitReader(fh, maxCacheBytes+1))
	if err != nil || len(data) > maxCacheBytes {
		return nil, false
	}
	var c cacheFileData
	if err := json.Unmarshal(data, &c); err != nil || c.Version != cacheVersion || c.Key != key {
		return nil, false
	}
	t := &Topology{EmptyNodes: c.Empty}
	for i, v := range c.CPUs {
		if i > 0 && v[0] <= c.CPUs[i-1][0] || v[4] > 1 || v[4] < 0 {
			return nil, false
		}
		t.CPUs = append(t.CPUs, CPU{ID: v[0], Core: v[1], Socket: v[2], NUMANode: v[3], Online: v[4] == 1})
	}
	for i, n := range c.Nodes {
		if i > 0 && n.ID <= c.Nodes[i-1].ID {
			return nil, false
		}
		cpus, err := cpuset.Parse(n.CPUs)
		if err != nil {
			return nil, false
		}
		d := make(map[int]int, len(n.Distances))
		for _, kv := range n.Distances {
			d[kv[0]] = kv[1]
		}
		t.Nodes = append(t.Nodes, NUMANode{ID: n.ID, CPUs: cpus, Distances: d})
	}
	if len(t.CPUs) == 0 {
		return nil, false
	}
	decoded.put(id, t)
	return t.layoutCopy(), true
}

// cacheIdentity names one version of a cache file: the file (its path,
// device, inode, size and change times) and the key it was read for.
// Every write of the file is a new inode renamed into place, so a file
// another process rewrote never has the identity of the one decoded
// before.
type cacheIdentity struct {
	path, key    string
	dev, ino     uint64
	size         int64
	mtime, ctime syscall.Timespec
}

// decodedCache keeps the last layout a process decoded from a cache file.
// The node service runs one prolog after another on the same layout; it
// decodes the file once instead of at every job (a 1024-CPU layout takes
// milliseconds to decode).
type decodedCache struct {
	mu sync.Mutex
	id cacheIdentity
	t  *Topology
}

var decoded decodedCache

// get returns a copy of the layout decoded for id, or nil.
func (d *decodedCache) get(id cacheIdentity) *Topology {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.t == nil || d.id != id {
		return nil
	}
	return d.t.layoutCopy()
}

func (d *decodedCache) put(id cacheIdentity, t *Topology) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.id, d.t = id, t
}

// layoutCopy copies the parts of t a cache file holds, deep enough that
// refreshing the copy's memory or changing its maps leaves t as it was.
func (t *Topology) layoutCopy() *Topology {
	c := &Topology{CPUs: slices.Clone(t.CPUs), Nodes: slices.Clone(t.Nodes), EmptyNodes: slices.Clone(t.EmptyNodes)}
	for i := range c.Nodes {
		c.Nodes[i].Distances = maps.Clone(c.Nodes[i].Distances)
	}
	return c
}

// storeCache writes the layout part of t under key.
func storeCache(path, key string, t *Topology) error {
	c := cacheFileData{Version: cacheVersion, Key: key, Empty: t.EmptyNodes}
	for _, cpu := range t.CPUs {
		on := 0
		if cpu.Online {
			on = 1
		}
		c.CPUs = append(c.CPUs, [5]int{cpu.ID, cpu.Core, cpu.Socket, cpu.NUMANode, on})
	}
	for _, n := range t.Nodes {
		cn := cacheNode{ID: n.ID, CPUs: n.CPUs.String()}
		for _, id := range slices.Sorted(maps.Keys(n.Distances)) {
			cn.Distances = append(cn.Distances, [2]int{id, n.Distances[id]})
		}
		c.Nodes = append(c.Nodes, cn)
	}
	data, err := json.Marshal(&c)
	if err != nil {
		return err
	}
	// The layout is rebuilt from sysfs whenever the file is missing, so no
	// fsync: atomicity against a killed writer is enough.
	return atomicfile.Write(filepath.Dir(path), filepath.Base(path), data,
		atomicfile.Options{Perm: 0o600, TempPrefix: "." + filepath.Base(path) + ".tmp-"})
}
