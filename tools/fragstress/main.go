// Command fragstress fragments a node's memory the way the paper's
// 12-hour stress did (§6.2), scaled down and bounded in time, for the VM
// harness (scripts/vm-node). Run it inside the cgroup whose cpuset it
// should stress:
//
//	fragstress --role job    --seconds 20 --seed 1 --mem-mb 2400
//	fragstress --role system --seconds 20 --seed 1 --mem-mb 700
//
// role job mixes Linux-job-like churn (STREAM-like large anonymous
// allocate/touch/free; IOzone-like many small files in tmpfs; pipes and
// unix sockets, whose buffers and slab are unmovable kernel memory;
// sparse touches of big mappings, whose page tables are unmovable; short
// child processes) with LWK-like large reservations (a quarter of the
// budget populated at once, held, released). role system churns
// anonymous memory and tmpfs files up to its budget. At the deadline
// everything is freed except about 2% of the files, pipes and sockets,
// like long-lived kernel objects on a real node: the files stay in tmpfs,
// the pipes and sockets are handed to a small holder process (--holder,
// busybox sleep) and the program exits, so no Go heap of a finished job
// stays behind. It writes "done" and the holder's PID to --done-file
// (if given) when it has reached that state.
//
// Memory is mapped with mmap(2) directly, not through the Go heap, so the
// program frees exactly what it says it frees. Linux only.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

type options struct {
	role      string
	seconds   int
	seed      int64
	memMB     int
	workers   int
	dir       string
	doneFile  string
	childPath string
	holder    string
}

func main() {
	var o options
	flag.StringVar(&o.role, "role", "job", "job or system")
	flag.IntVar(&o.seconds, "seconds", 20, "stress duration")
	flag.Int64Var(&o.seed, "seed", 1, "random seed")
	flag.IntVar(&o.memMB, "mem-mb", 1024, "memory budget of all workers together (MiB)")
	flag.IntVar(&o.workers, "workers", 4, "worker goroutines (each on its own OS thread)")
	flag.StringVar(&o.dir, "dir", "/tmp/fragstress", "tmpfs directory for files")
	flag.StringVar(&o.doneFile, "done-file", "", "file to write once only the residue is left")
	flag.StringVar(&o.childPath, "child", "/bin/true", "program short-lived children run")
	flag.StringVar(&o.holder, "holder", "/bin/sleep", "program that holds the residual pipes and sockets (run with one argument, 1000000)")
	flag.Parse()
	if o.role != "job" && o.role != "system" {
		fmt.Fprintln(os.Stderr, "fragstress: --role must be job or system")
		os.Exit(2)
	}
	if o.seconds <= 0 || o.memMB <= 0 || o.workers <= 0 {
		fmt.Fprintln(os.Stderr, "fragstress: --seconds, --mem-mb and --workers must be positive")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "fragstress: %v\n", err)
		os.Exit(1)
	}
}

// stats counts operations and failures (ENOMEM on pipes shows the
// Movable-only cpuset trap).
type stats struct {
	mu                                           sync.Mutex
	anon, files, pipes, socks, sparse, kids, lwk int
	fail                                         map[string]int
}

func (s *stats) add(p *int) { s.mu.Lock(); *p++; s.mu.Unlock() }
func (s *stats) failed(what string, err error) {
	s.mu.Lock()
	s.fail[what+": "+err.Error()]++
	s.mu.Unlock()
}

// residue is what survives the deadline.
type residue struct {
	mu  sync.Mutex
	fds []int
}

func run(o options) error {
	if err := os.MkdirAll(o.dir, 0o700); err != nil {
		return err
	}
	st := &stats{fail: map[string]int{}}
	res := &residue{}
	deadline := time.Now().Add(time.Duration(o.seconds) * time.Second)
	budget := uint64(o.memMB) << 20 / uint64(o.workers)
	var wg sync.WaitGroup
	for w := 0; w < o.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			wk := &worker{o: o, id: w, rng: rand.New(rand.NewSource(o.seed*1000 + int64(w))), budget: budget, st: st, res: res, deadline: deadline}
			wk.loop()
		}(w)
	}
	wg.Wait()
	fmt.Printf("fragstress role=%s seed=%d: anon=%d files=%d pipes=%d sockets=%d sparse=%d children=%d lwk=%d residue_fds=%d\n",
		o.role, o.seed, st.anon, st.files, st.pipes, st.socks, st.sparse, st.kids, st.lwk, len(res.fds))
	for k, v := range st.fail {
		fmt.Printf("fragstress failures: %dx %s\n", v, k)
	}
	holder := 0
	if len(res.fds) > 0 {
		cmd := exec.Command(o.holder, "1000000")
		for _, fd := range res.fds {
			cmd.ExtraFiles = append(cmd.ExtraFiles, os.NewFile(uintptr(fd), "residue"))
		}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start holder %s: %w", o.holder, err)
		}
		holder = cmd.Process.Pid
		fmt.Printf("fragstress: %d residual fds held by pid %d\n", len(res.fds), holder)
	}
	if o.doneFile != "" {
		if err := os.WriteFile(o.doneFile, []byte(fmt.Sprintf("done %d\n", holder)), 0o644); err != nil {
			return err
		}
	}
	return nil
}

type mapping struct {
	b []byte
}

type worker struct {
	o        options
	id       int
	rng      *rand.Rand
	budget   uint64
	used     uint64
	st       *stats
	res      *residue
	deadline time.Time
	maps     []mapping
	files    []string
	fileSize uint64
	fds      []int
	seq      int
}

const mib = 1 << 20

func (w *worker) loop() {
	for time.Now().Before(w.deadline) {
		r := w.rng.Intn(100)
		if w.o.role == "system" {
			switch {
			case r < 50:
				w.anon()
			case r < 70:
				w.unmapSome()
			default:
				w.file()
			}
			continue
		}
		// Kernel objects dominate the mix: under emulation touching
		// memory is slow, and unmovable allocations are what fragment.
		switch {
		case r < 15:
			w.anon()
		case r < 22:
			w.unmapSome()
		case r < 40:
			w.file()
		case r < 60:
			w.pipe()
		case r < 78:
			w.socket()
		case r < 88:
			w.sparse()
		case r < 98:
			w.child()
		default:
			w.lwk()
		}
	}
	w.cleanup()
}

// anon maps 16 KiB to 16 MiB and touches every page.
func (w *worker) anon() {
	size := uint64(16<<10) << uint(w.rng.Intn(11)) // 16 KiB .. 16 MiB
	for w.used+size > w.budget*9/10 && len(w.maps) > 0 {
		w.unmap(w.rng.Intn(len(w.maps)))
	}
	if w.used+size > w.budget {
		return
	}
	b, err := syscall.Mmap(-1, 0, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON)
	if err != nil {
		w.st.failed("mmap", err)
		return
	}
	for i := 0; i < len(b); i += 4096 {
		b[i] = byte(i)
	}
	w.maps = append(w.maps, mapping{b})
	w.used += size
	w.st.add(&w.st.anon)
	// Punch a hole now and then: partially freed regions fragment.
	if w.rng.Intn(4) == 0 && size >= 1<<20 {
		off := (w.rng.Intn(int(size)/2) / 4096) * 4096
		_ = syscall.Madvise(b[off:off+int(size)/4], 4) // MADV_DONTNEED
	}
}

func (w *worker) unmap(i int) {
	m := w.maps[i]
	_ = syscall.Munmap(m.b)
	w.used -= uint64(len(m.b))
	w.maps[i] = w.maps[len(w.maps)-1]
	w.maps = w.maps[:len(w.maps)-1]
}

func (w *worker) unmapSome() {
	for n := w.rng.Intn(3) + 1; n > 0 && len(w.maps) > 0; n-- {
		w.unmap(w.rng.Intn(len(w.maps)))
	}
}

// file writes a 4 KiB to 256 KiB file (files take at most a fifth of the
// budget), or removes some.
func (w *worker) file() {
	if w.rng.Intn(3) == 0 && len(w.files) > 0 {
		for n := w.rng.Intn(8) + 1; n > 0 && len(w.files) > 0; n-- {
			i := w.rng.Intn(len(w.files))
			if st, err := os.Stat(w.files[i]); err == nil {
				w.fileSize -= uint64(st.Size())
			}
			_ = os.Remove(w.files[i])
			w.files[i] = w.files[len(w.files)-1]
			w.files = w.files[:len(w.files)-1]
		}
		return
	}
	size := 4096 << uint(w.rng.Intn(7)) // 4 KiB .. 256 KiB
	if w.fileSize+uint64(size) > w.budget/5 {
		return
	}
	w.seq++
	p := filepath.Join(w.o.dir, fmt.Sprintf("%s-%d-%d-%d", w.o.role, w.o.seed, w.id, w.seq))
	buf := make([]byte, size)
	w.rng.Read(buf)
	if err := os.WriteFile(p, buf, 0o600); err != nil {
		w.st.failed("file", err)
		return
	}
	w.files = append(w.files, p)
	w.fileSize += uint64(size)
	w.st.add(&w.st.files)
}

// pipe fills a pipe with 4 to 64 KiB: pipe buffers are unmovable pages
// allocated within the cpuset (GFP_HIGHUSER, hardwall).
func (w *worker) pipe() {
	var p [2]int
	if err := syscall.Pipe2(p[:], syscall.O_NONBLOCK|syscall.O_CLOEXEC); err != nil {
		w.st.failed("pipe", err)
		return
	}
	buf := make([]byte, 4096<<uint(w.rng.Intn(5)))
	if _, err := syscall.Write(p[1], buf); err != nil {
		w.st.failed("pipe write", err)
	}
	w.keep(p[0], p[1])
	w.st.add(&w.st.pipes)
}

// socket queues data on a unix socket pair (skb and slab memory).
func (w *worker) socket() {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		w.st.failed("socketpair", err)
		return
	}
	buf := make([]byte, 1024<<uint(w.rng.Intn(6)))
	if _, err := syscall.Write(fds[0], buf); err != nil {
		w.st.failed("socket write", err)
	}
	w.keep(fds[0], fds[1])
	w.st.add(&w.st.socks)
}

// keep holds fds for a while: at most 384 pairs per worker, closing a
// random pair (objects die in any order, as on a real node).
func (w *worker) keep(fds ...int) {
	w.fds = append(w.fds, fds...)
	for len(w.fds) > 768 {
		i := 2 * w.rng.Intn(len(w.fds)/2)
		_ = syscall.Close(w.fds[i])
		_ = syscall.Close(w.fds[i+1])
		w.fds[i], w.fds[i+1] = w.fds[len(w.fds)-2], w.fds[len(w.fds)-1]
		w.fds = w.fds[:len(w.fds)-2]
	}
}

// sparse touches one page every 2 MiB of a 256 MiB to 1 GiB mapping
// without huge pages: mostly page-table pages, which are unmovable.
func (w *worker) sparse() {
	size := (256 * mib) << uint(w.rng.Intn(3))
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_NORESERVE)
	if err != nil {
		w.st.failed("sparse mmap", err)
		return
	}
	_ = syscall.Madvise(b, 15) // MADV_NOHUGEPAGE
	for i := 0; i < size; i += 2 * mib {
		b[i] = 1
	}
	_ = syscall.Munmap(b)
	w.st.add(&w.st.sparse)
}

// child runs a short-lived process (task structs, page tables, slab).
func (w *worker) child() {
	if err := exec.Command(w.o.childPath).Run(); err != nil {
		w.st.failed("child", err)
		return
	}
	w.st.add(&w.st.kids)
}

// lwk takes a quarter of the budget at once, as an LWK reservation would,
// holds it briefly and gives it back.
func (w *worker) lwk() {
	for len(w.maps) > 0 {
		w.unmap(len(w.maps) - 1)
	}
	size := int(w.budget / 4)
	b, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_PRIVATE|syscall.MAP_ANON|syscall.MAP_POPULATE)
	if err != nil {
		w.st.failed("lwk mmap", err)
		return
	}
	time.Sleep(time.Duration(200+w.rng.Intn(800)) * time.Millisecond)
	_ = syscall.Munmap(b)
	w.st.add(&w.st.lwk)
}

// cleanup frees everything but about 2% of files and fds.
func (w *worker) cleanup() {
	for len(w.maps) > 0 {
		w.unmap(len(w.maps) - 1)
	}
	for _, f := range w.files {
		if w.rng.Intn(50) != 0 {
			_ = os.Remove(f)
		}
	}
	w.files = nil
	var kept []int
	for i := 0; i+1 < len(w.fds); i += 2 {
		if w.rng.Intn(50) == 0 {
			kept = append(kept, w.fds[i], w.fds[i+1])
			continue
		}
		_ = syscall.Close(w.fds[i])
		_ = syscall.Close(w.fds[i+1])
	}
	w.fds = nil
	w.res.mu.Lock()
	w.res.fds = append(w.res.fds, kept...)
	w.res.mu.Unlock()
}
