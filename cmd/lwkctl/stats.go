package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/slurm-lwk/slurm-lwk/pkg/accounting"
	"github.com/slurm-lwk/slurm-lwk/pkg/slurm"
)

const (
	defaultSacct    = "/usr/bin/sacct"
	defaultSacctmgr = "/usr/bin/sacctmgr"
	// defaultMonitorPort is lwk-monitor's default HTTP port.
	defaultMonitorPort = 9417
)

// statsCmd prints a job's LWK usage record from the accounting database.
func statsCmd(ctx context.Context, fs *pflag.FlagSet, args []string, stdout io.Writer) error {
	jsonOut := fs.Bool("json", false, "print JSON")
	field := fs.String("field", "SystemComment", "accounting field holding the record (SystemComment, AdminComment, Comment)")
	sacct := fs.String("sacct", defaultSacct, "sacct binary")
	record := fs.String("record", "", "decode this record text instead of asking sacct")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var rec *accounting.JobRecord
	var err error
	switch {
	case *record != "" && fs.NArg() == 0:
		rec, err = accounting.Decode(*record)
	case *record == "" && fs.NArg() == 1:
		var id uint64
		id, err = strconv.ParseUint(fs.Arg(0), 10, 32)
		if err != nil || id == 0 {
			return fmt.Errorf("stats: job ID %q: want a positive number", fs.Arg(0))
		}
		rec, err = accounting.Fetch(ctx, slurm.ExecRunner{}, *sacct, uint32(id), *field)
	default:
		return errors.New("stats: give a JOBID or --record TEXT")
	}
	if err != nil {
		return err
	}
	if *jsonOut {
		return writeJSON(stdout, rec)
	}
	return rec.WriteTable(stdout)
}

// accountCmd gathers the nodes' records of a job from their monitors,
// merges them and stores the result in the accounting database: the
// controller-side step, run from EpilogSlurmctld (which sets SLURM_JOB_ID
// and SLURM_JOB_NODELIST) or, with --since, from a timer that catches jobs
// whose record is missing.
func accountCmd(ctx context.Context, fs *pflag.FlagSet, args []string, stdout io.Writer) error {
	job := fs.Uint32("job", 0, "job ID (default $SLURM_JOB_ID)")
	nodes := fs.String("nodes", "", "the job's nodes, hostlist syntax (default $SLURM_JOB_NODELIST)")
	since := fs.Duration("since", 0, "catch up: account every job that ended in this window and has no record")
	field := fs.String("field", "SystemComment", "accounting field to store the record in (SystemComment, AdminComment, Comment)")
	port := fs.Int("port", defaultMonitorPort, "lwk-monitor's HTTP port on the nodes")
	scheme := fs.String("scheme", "http", "http or https")
	caFile := fs.String("ca-file", "", "CA certificate(s) to verify the monitors' TLS certificates")
	user := fs.String("user", "", "basic authentication user")
	passFile := fs.String("password-file", "", "file holding the basic authentication password")
	conc := fs.Int("concurrency", 64, "requests in flight at most")
	timeout := fs.Duration("timeout", 20*time.Second, "per-node timeout, waiting for the node's epilog included")
	dryRun := fs.Bool("dry-run", false, "print the record instead of storing it")
	connect := fs.String("connect", "", "connect to this address for every node (single-host test clusters whose nodes all run on loopback)")
	sacct := fs.String("sacct", defaultSacct, "sacct binary")
	sacctmgr := fs.String("sacctmgr", defaultSacctmgr, "sacctmgr binary")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := accounting.CheckField(*field); err != nil {
		return err
	}
	if *scheme != "http" && *scheme != "https" {
		return fmt.Errorf("account: --scheme %q: want http or https", *scheme)
	}
	if *port <= 0 || *port > 65535 {
		return fmt.Errorf("account: --port %d out of range", *port)
	}
	g, err := gatherer(*scheme, *port, *caFile, *user, *passFile, *conc, *timeout)
	if err != nil {
		return err
	}
	if *connect != "" {
		addr := net.JoinHostPort(*connect, strconv.Itoa(*port))
		d := &net.Dialer{}
		g.Client.Transport.(*http.Transport).DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, addr)
		}
	}
	a := accounter{g: g, field: *field, sacct: *sacct, sacctmgr: *sacctmgr, dryRun: *dryRun, out: stdout, r: slurm.ExecRunner{}}
	if *since > 0 {
		return a.catchUp(ctx, *since)
	}
	if *job == 0 {
		v, err := strconv.ParseUint(os.Getenv("SLURM_JOB_ID"), 10, 32)
		if err != nil || v == 0 {
			return errors.New("account: no --job and no SLURM_JOB_ID")
		}
		*job = uint32(v)
	}
	if *nodes == "" {
		*nodes = os.Getenv("SLURM_JOB_NODELIST")
	}
	hosts, err := slurm.ExpandHostlist(*nodes)
	if err != nil {
		return fmt.Errorf("account job %d: %w", *job, err)
	}
	return a.account(ctx, *job, hosts)
}

func gatherer(scheme string, port int, caFile, user, passFile string, conc int, timeout time.Duration) (*accounting.Gatherer, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// Every node is a different host: keeping idle connections would only
	// hold memory.
	tr.DisableKeepAlives = true
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("account: --ca-file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("account: --ca-file %s: no certificate", caFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	g := &accounting.Gatherer{
		Client:      &http.Client{Transport: tr},
		BaseURL:     func(node string) string { return scheme + "://" + node + ":" + strconv.Itoa(port) },
		Concurrency: conc, Timeout: timeout, Username: user,
	}
	if passFile != "" {
		b, err := os.ReadFile(passFile)
		if err != nil {
			return nil, fmt.Errorf("account: --password-file: %w", err)
		}
		g.Password = strings.TrimSpace(string(b))
	}
	return g, nil
}

type accounter struct {
	g               *accounting.Gatherer
	r               slurm.Runner
	field           string
	sacct, sacctmgr string
	dryRun          bool
	out             io.Writer
}

// account gathers, merges and stores one job's record. A job no node knows
// (a Linux job) gets no record.
func (a accounter) account(ctx context.Context, job uint32, hosts []string) error {
	for _, h := range hosts {
		if err := slurm.CheckNodeName(h); err != nil {
			return fmt.Errorf("account job %d: %w", job, err)
		}
	}
	res, err := a.g.Gather(ctx, job, hosts)
	if err != nil {
		return err
	}
	if len(res.Records) == 0 {
		fmt.Fprintf(a.out, "job %d: no LWK record on any of its %d nodes\n", job, len(hosts))
		return nil
	}
	var unreachable []string
	for n := range res.Unreachable {
		unreachable = append(unreachable, n)
	}
	rec, err := accounting.Merge(job, len(hosts), res.Records, unreachable)
	if err != nil {
		return err
	}
	enc, err := accounting.Encode(rec)
	if err != nil {
		return err
	}
	if a.dryRun {
		_, err := fmt.Fprintln(a.out, enc)
		return err
	}
	if err := accounting.Store(ctx, a.r, a.sacctmgr, job, a.field, enc); err != nil {
		return err
	}
	fmt.Fprintf(a.out, "job %d: stored %d-byte record from %d of %d nodes in %s\n", job, len(enc), rec.Reported, len(hosts), a.field)
	return nil
}

// catchUp accounts the jobs that ended within since and whose field holds
// no record yet.
func (a accounter) catchUp(ctx context.Context, since time.Duration) error {
	start := time.Now().Add(-since).Format("2006-01-02T15:04:05")
	out, err := a.r.Run(ctx, []string{a.sacct, "-a", "-X", "-n", "-P", "-S", start, "-E", "now",
		"-s", "CD,F,CA,TO,NF,OOM,PR", "-o", "JobIDRaw,NodeList," + a.field})
	if err != nil {
		return fmt.Errorf("account: list ended jobs: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.SplitN(line, "|", 3)
		if len(f) != 3 || strings.Contains(f[2], accounting.Prefix) || f[1] == "" || f[1] == "None assigned" {
			continue
		}
		id, err := strconv.ParseUint(f[0], 10, 32)
		if err != nil {
			continue
		}
		hosts, err := slurm.ExpandHostlist(f[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("job %d: %w", id, err))
			continue
		}
		if err := a.account(ctx, uint32(id), hosts); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
