// Command lwk-monitor is the node daemon that watches the LWK instances of
// slurm-lwk jobs without disturbing them. It runs on the OS cores (it pins
// itself and all its threads there first), outside Slurm's cgroups (as a
// systemd service: dist/systemd/lwk-monitor.service), and learns about LWK
// jobs from the prolog's journals and markers. Per instance it waits on
// IHK's OOM and STATUS eventfds, runs hang detection, samples rusage, freezes
// the LWK while Slurm has the job suspended, and on a panic, hang or OOM
// saves the LWK kernel log, fails the job with the reason and drains the
// node. It serves Prometheus metrics at /metrics and the per-job node
// records that `lwkctl account` gathers at /v1/jobs/<id>/record, with TLS
// and basic authentication from an exporter-toolkit web configuration file.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/slurm-lwk/slurm-lwk/pkg/config"
	"github.com/slurm-lwk/slurm-lwk/pkg/hookserver"
	"github.com/slurm-lwk/slurm-lwk/pkg/ihk"
	"github.com/slurm-lwk/slurm-lwk/pkg/journal"
	"github.com/slurm-lwk/slurm-lwk/pkg/lwknode"
	"github.com/slurm-lwk/slurm-lwk/pkg/metrics"
	"github.com/slurm-lwk/slurm-lwk/pkg/monitor"
	"github.com/slurm-lwk/slurm-lwk/pkg/procfs"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
	"github.com/slurm-lwk/slurm-lwk/pkg/spool"
	"github.com/slurm-lwk/slurm-lwk/pkg/topology"
)

// DefaultPort is the monitor's HTTP port (metrics and records).
const DefaultPort = 9417

type options struct {
	config          string
	node            string
	interval        time.Duration
	hangInterval    time.Duration
	suspendInterval time.Duration
	listen          []string
	webConfig       string
	spoolDir        string
	spoolMax        int64
	jobSamplesMax   int64
	once            bool
	verbose         bool
	serveHooks      bool
}

func main() {
	var o options
	fs := pflag.NewFlagSet("lwk-monitor", pflag.ContinueOnError)
	fs.StringVar(&o.config, "config", lwknode.DefaultConfigPath(), "node configuration file")
	fs.StringVar(&o.node, "node", "", "this node's Slurm NodeName (default: the short host name)")
	fs.DurationVar(&o.interval, "interval", monitor.DefaultInterval, "rusage sampling interval (at least 1s)")
	fs.DurationVar(&o.hangInterval, "hang-interval", time.Minute, "IHK hang detection interval, 0 disables (only one program per node may run it: start ihkmond without -i)")
	fs.DurationVar(&o.suspendInterval, "suspend-interval", time.Second, "how often job proxies are checked for suspension, 0 disables freezing")
	// Loopback by default: records and metrics name jobs and their usage, so
	// serving them beyond the node needs the web config's TLS and auth.
	fs.StringSliceVar(&o.listen, "web.listen-address", []string{"127.0.0.1:" + strconv.Itoa(DefaultPort)}, "addresses to serve metrics and records on (beyond loopback, set --web.config.file with TLS and basic auth)")
	fs.StringVar(&o.webConfig, "web.config.file", "", "exporter-toolkit web configuration (TLS, basic auth)")
	fs.StringVar(&o.spoolDir, "spool-dir", "/var/spool/slurm-lwk/monitor", "root-only directory for samples, records and kernel logs")
	fs.Int64Var(&o.spoolMax, "spool-max-bytes", spool.DefaultMaxTotalBytes, "bound on the spool directory's size")
	fs.Int64Var(&o.jobSamplesMax, "job-max-bytes", spool.DefaultMaxJobBytes, "bound on one job's sample log (and one saved kernel log)")
	fs.BoolVar(&o.serveHooks, "serve-hooks", true, "run the SPANK plugin's job prologs and epilogs on RunDir/"+hookserver.SocketName+" (root only), sparing a program start per job")
	fs.BoolVar(&o.once, "once", false, "find the jobs, take one sample, print the status as JSON and exit")
	fs.BoolVar(&o.verbose, "verbose", false, "log at debug level")
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return
		}
		fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if err := run(ctx, o); err != nil {
		fatal(err)
	}
}

func fatal(err error) {
	fmt.Fprintf(os.Stderr, "lwk-monitor: %s\n", lwknode.OneLine(err))
	os.Exit(1)
}

func run(ctx context.Context, o options) error {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	proc := procfs.Default()
	if err := outsideSlurm(proc.Path("self", "cgroup")); err != nil {
		return err
	}
	cfg, err := config.Load(o.config)
	if err != nil {
		return err
	}
	if err := pinToOSCores(cfg, proc); err != nil {
		return err
	}
	if o.node == "" {
		h, err := os.Hostname()
		if err != nil {
			return fmt.Errorf("host name: %w", err)
		}
		o.node, _, _ = strings.Cut(h, ".")
	}
	if err := slurm.CheckNodeName(o.node); err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	node, err := lwknode.Open(cfg, log, false)
	if err != nil {
		return err
	}
	journals, err := journal.OpenReader(lwknode.JournalDir(cfg))
	if err != nil {
		return err
	}
	sp, err := spool.Open(o.spoolDir, o.spoolMax, o.jobSamplesMax)
	if err != nil {
		return err
	}
	numa, err := readinessNodes(cfg)
	if err != nil {
		return err
	}
	runner := slurm.ExecRunner{}
	if c := os.Getenv("SLURM_CONF"); c != "" {
		runner.Env = append(append([]string(nil), slurm.DefaultEnv...), "SLURM_CONF="+c)
	}
	m, err := monitor.New(monitor.Config{
		Node: o.node, DevDir: cfg.DevDir, RunDir: cfg.RunDir, LogDir: cfg.LogDir,
		Interval: o.interval, HangInterval: o.hangInterval, SuspendInterval: o.suspendInterval,
		ReadinessNodes: numa, SysfsRoot: cfg.SysfsRoot, Proc: proc, Perf: perfAttrs(cfg),
		DriverTime: node.DriverClock(),
	}, monitor.Deps{
		IHK:      node.IHK,
		Journals: journals,
		Lock:     monitor.NodeLock{Dir: cfg.StateDir},
		Slurm: monitor.SlurmCommands{Runner: runner, Scontrol: cfg.ScontrolPath, Scancel: cfg.ScancelPath, Squeue: cfg.SqueuePath,
			Node: o.node, ReasonField: monitor.ReasonFieldOf(cfg.FailureReasonField)},
		Proxies: monitor.ProcProxies{Proc: proc, CgroupRoot: "/sys/fs/cgroup"},
		Spool:   sp,
		Log:     log,
	})
	if err != nil {
		return err
	}
	if o.once {
		m.Once(ctx)
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(m.Snapshot())
	}
	var hooks *hookService
	if o.serveHooks {
		// Only a speed-up: without the socket the plugin runs the
		// programs, and monitoring must not be lost for it.
		if hooks, err = listenHooks(cfg, o.config, log); err != nil {
			log.Error("not serving job prologs and epilogs; the plugin runs the programs", "err", err)
		}
	}
	return serve(ctx, m, hooks, o, log)
}

// hookService is the hook socket and its server.
type hookService struct {
	srv *hookserver.Server
	ln  *net.UnixListener
}

// listenHooks opens the hook socket in RunDir (lwknode.Open made it
// root's alone).
func listenHooks(cfg *config.Config, configPath string, log *slog.Logger) (*hookService, error) {
	abs, err := filepath.Abs(configPath)
	if err != nil {
		return nil, fmt.Errorf("--config %s: %w", configPath, err)
	}
	ln, err := hookserver.Listen(filepath.Join(cfg.RunDir, hookserver.SocketName))
	if err != nil {
		return nil, err
	}
	log.Info("serving job prologs and epilogs", "socket", ln.Addr().String(), "config", abs)
	return &hookService{srv: &hookserver.Server{ConfigPath: abs, Log: log}, ln: ln}, nil
}

// serve runs the monitor, its HTTP endpoint and, when given, the hook
// socket until ctx ends. Hooks in progress then finish before it returns.
func serve(ctx context.Context, m *monitor.Monitor, hooks *hookService, o options, log *slog.Logger) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(metrics.Registry(m), promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}))
	mux.Handle("/v1/", m.Handler())
	w, err := startWeb(mux, o.listen, o.webConfig, log)
	if err != nil {
		if hooks != nil {
			hooks.ln.Close() // and its socket file: nobody would answer
		}
		return err
	}
	go func() { w.errc <- m.Run(ctx) }()
	if hooks != nil {
		ctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		defer func() { cancel(); <-done }()
		go func() {
			defer close(done)
			if err := hooks.srv.Serve(ctx, hooks.ln); err != nil {
				w.errc <- err
			}
		}()
	}
	select {
	case <-ctx.Done():
	case err := <-w.errc:
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			_ = w.shutdown()
			return err
		}
	}
	return w.shutdown()
}

// webServer serves the monitor's HTTP endpoint through the exporter
// toolkit, which applies the web configuration's TLS and basic
// authentication.
type webServer struct {
	srv   *http.Server
	addrs []net.Addr
	errc  chan error
}

// startWeb checks the web configuration (when given) and serves h on every
// address of listen.
func startWeb(h http.Handler, listen []string, webConfig string, log *slog.Logger) (*webServer, error) {
	if webConfig != "" {
		if err := web.Validate(webConfig); err != nil {
			return nil, fmt.Errorf("--web.config.file %s: %w", webConfig, err)
		}
	}
	w := &webServer{srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}, errc: make(chan error, len(listen)+2)}
	flags := &web.FlagConfig{WebListenAddresses: &listen, WebSystemdSocket: new(bool), WebConfigFile: &webConfig}
	var ls []net.Listener
	for _, addr := range listen {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range ls {
				l.Close()
			}
			return nil, fmt.Errorf("listen on %s: %w", addr, err)
		}
		ls = append(ls, l)
		w.addrs = append(w.addrs, l.Addr())
	}
	for _, l := range ls {
		log.Info("serving metrics and records", "address", l.Addr().String())
		go func() { w.errc <- web.Serve(l, w.srv, flags, log) }()
	}
	return w, nil
}

// shutdown stops serving, waiting up to 5 s for requests in flight.
func (w *webServer) shutdown() error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return w.srv.Shutdown(ctx)
}

// perfAttrs maps each profile with PerfEvents= to the counters the
// monitor programs for its jobs.
func perfAttrs(cfg *config.Config) map[string][]ihk.PerfAttr {
	out := map[string][]ihk.PerfAttr{}
	for name, p := range cfg.Profiles {
		for _, ev := range p.PerfEvents {
			out[name] = append(out[name], ihk.PerfAttr{Config: ev.Code, ExcludeUser: !ev.User, ExcludeKernel: !ev.Kernel})
		}
	}
	return out
}

// outsideSlurm refuses to run inside Slurm's cgroup tree: a monitor started
// from a job would be killed with it, and counted in its usage.
func outsideSlurm(cgroupFile string) error {
	b, err := os.ReadFile(cgroupFile)
	if err != nil {
		return nil // no cgroups: nothing to be inside of
	}
	for _, line := range strings.Split(string(b), "\n") {
		_, path, _ := strings.Cut(line, "::")
		if i := strings.LastIndexByte(line, ':'); i >= 0 {
			path = line[i+1:]
		}
		if strings.Contains(path, "/slurm/") || strings.Contains(path, "/slurm_") || strings.Contains(path, "slurmstepd.scope") ||
			strings.Contains(path, "/job_") {
			return fmt.Errorf("running inside Slurm's cgroup %s: start lwk-monitor as a service (dist/systemd/lwk-monitor.service), not from a job or slurmd", path)
		}
	}
	return nil
}

// readinessNodes are the job NUMA nodes (all nodes when the node is not
// split).
func readinessNodes(cfg *config.Config) ([]int, error) {
	if !cfg.JobNUMANodes.IsEmpty() {
		return cfg.JobNUMANodes.List(), nil
	}
	topo, err := topology.ReadLayout(cfg.SysfsRoot)
	if err != nil {
		return nil, err
	}
	return topo.MemoryNodes().List(), nil
}

// pinToOSCores restricts every thread of the process to the OS cores that
// are online on this machine (with the simulator, the configuration's
// topology may describe a larger machine). Threads the runtime creates
// later, and commands the monitor runs, inherit the mask.
func pinToOSCores(cfg *config.Config, proc procfs.FS) error {
	host, err := topology.ReadLayout("/")
	if err != nil {
		return err
	}
	cpus := cfg.OSCores.Intersection(host.OnlineCPUs())
	if cpus.IsEmpty() {
		return fmt.Errorf("os cores %s: none online to run on", cfg.OSCores)
	}
	var set unix.CPUSet
	for _, c := range cpus.List() {
		set.Set(c)
	}
	tasks, err := os.ReadDir(proc.Path("self", "task"))
	if err != nil {
		return fmt.Errorf("pin to os cores %s: %w", cpus, err)
	}
	for _, t := range tasks {
		tid, err := strconv.Atoi(t.Name())
		if err != nil {
			continue
		}
		if err := unix.SchedSetaffinity(tid, &set); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d to os cores %s: %w", tid, cpus, err)
		}
	}
	return nil
}
