// Command benchaccounting measures the controller-side accounting step for a
// 10,000-node LWK job, simulated on loopback: one HTTP server answers, as
// lwk-monitor does, for every virtual node (chosen by the Host header) with
// a realistic per-node record. It gathers all records with bounded
// concurrency and a per-node timeout (some nodes refuse connections, some
// never answer), merges them and encodes the record sacctmgr would store.
// It prints the wall time and the process's peak memory (server included)
// per round, and checks them against the targets (10 s, 200 MB).
//
// sacctmgr is not run: the stored string is what it would receive. One
// sacctmgr call costs about as much for 10,000 nodes as for one.
//
//	go run ./tools/benchaccounting [--nodes 10000] [--rounds 3]
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
)

func main() {
	nodes := flag.Int("nodes", 10000, "virtual nodes")
	rounds := flag.Int("rounds", 3, "rounds")
	conc := flag.Int("concurrency", 64, "requests in flight at most")
	timeout := flag.Duration("timeout", 2*time.Second, "per-node timeout")
	refused := flag.Int("refused", 50, "nodes whose monitor refuses connections")
	silent := flag.Int("silent", 20, "nodes whose monitor never answers (they cost the timeout)")
	flag.Parse()
	if err := run(*nodes, *rounds, *conc, *timeout, *refused, *silent); err != nil {
		fmt.Fprintln(os.Stderr, "benchaccounting:", err)
		os.Exit(1)
	}
}

const job = 4242

func nodeName(i int) string { return fmt.Sprintf("cn%05d", i) }

func record(node string, i int) accounting.NodeRecord {
	r := accounting.NodeRecord{
		Version: accounting.NodeRecordVersion, JobID: job, Node: node, OS: 0, Final: accounting.FinalEpilog,
		UserSeconds: 171800 + float64(i%211), SystemSeconds: 300 + float64(i%17), MaxMemoryBytes: 90<<30 + uint64(i%31)<<20,
		MaxKernelMemoryBytes: 310 << 20, MaxRSSByPageSize: map[string]uint64{"4K": 1 << 30, "2M": 80 << 30, "1G": 8 << 30},
		MaxThreads: 49, Samples: 6, BootSeconds: 4 + float64(i%9)/10, TeardownSeconds: 1.2 + float64(i%5)/10,
		Perf: map[string]uint64{"0x3c": 3_600_000_000_000 + uint64(i)},
	}
	if i%997 == 0 {
		r.Events = map[string]int{accounting.EventOOM: 1}
	}
	return r
}

func run(n, rounds, conc int, timeout time.Duration, refused, silent int) error {
	// The server: one listener answering for every node, from records
	// encoded once (a monitor answers from its cache; the encoding work is
	// the nodes', not the controller's).
	bodies := make([][]byte, n)
	for i := range n {
		b, err := json.Marshal(record(nodeName(i), i))
		if err != nil {
			return err
		}
		bodies[i] = b
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := strings.Cut(r.Host, ":")
		i, err := strconv.Atoi(strings.TrimPrefix(host, "cn"))
		if err != nil || i < 0 || i >= n {
			http.NotFound(w, r)
			return
		}
		if i < silent {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(bodies[i])
	}), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	addr := l.Addr().String()

	names := make([]string, n)
	refuse := map[string]bool{}
	for i := range n {
		names[i] = nodeName(i)
		if i >= silent && i < silent+refused {
			refuse[names[i]] = true
		}
	}
	closed, err := closedPort()
	if err != nil {
		return err
	}
	d := &net.Dialer{}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(a)
		if refuse[host] {
			return d.DialContext(ctx, network, closed)
		}
		return d.DialContext(ctx, network, addr)
	}}
	g := &accounting.Gatherer{Client: &http.Client{Transport: tr}, Concurrency: conc, Timeout: timeout,
		BaseURL: func(node string) string { return "http://" + node + ":9417" }}

	fmt.Printf("benchaccounting: %d nodes (%d refusing, %d silent), concurrency %d, per-node timeout %s, GOMAXPROCS %d\n",
		n, refused, silent, conc, timeout, runtime.GOMAXPROCS(0))
	worst := time.Duration(0)
	for r := 1; r <= rounds; r++ {
		runtime.GC()
		cpu0 := cpuSeconds()
		start := time.Now()
		res, err := g.Gather(context.Background(), job, names)
		if err != nil {
			return err
		}
		gathered := time.Since(start)
		var un []string
		for node := range res.Unreachable {
			un = append(un, node)
		}
		rec, err := accounting.Merge(job, n, res.Records, un)
		if err != nil {
			return err
		}
		enc, err := accounting.Encode(rec)
		if err != nil {
			return err
		}
		total := time.Since(start)
		worst = max(worst, total)
		fmt.Printf("round %d: %.2f s total (gather %.2f s, merge+encode %.3f s), CPU %.2f s (server included), %d records, %d unreachable, record %d bytes, peak RSS %.1f MB\n",
			r, total.Seconds(), gathered.Seconds(), (total - gathered).Seconds(), cpuSeconds()-cpu0, len(res.Records), len(un), len(enc), peakRSSMB())
		if len(un) != refused+silent {
			return fmt.Errorf("round %d: %d unreachable, want %d", r, len(un), refused+silent)
		}
	}
	peak := peakRSSMB()
	if l, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Printf("load average during the run: %s", l)
	}
	fmt.Printf("result: worst round %.2f s (target <= 10 s: %s), peak RSS of the process, server included, %.1f MB (target <= 200 MB: %s)\n",
		worst.Seconds(), yes(worst <= 10*time.Second), peak, yes(peak <= 200))
	if worst > 10*time.Second || peak > 200 {
		return fmt.Errorf("target missed")
	}
	return nil
}

func yes(b bool) string {
	if b {
		return "met"
	}
	return "MISSED"
}

// cpuSeconds is this process's user+system CPU time: a figure that, unlike
// the wall time, does not depend on what else the machine runs.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// closedPort returns a loopback address nothing listens on.
func closedPort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	a := l.Addr().String()
	l.Close()
	return a, nil
}

// peakRSSMB is VmHWM of this process. Units: MB (10^6 bytes).
func peakRSSMB() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 64)
			return kb * 1024 / 1e6
		}
	}
	return -1
}
