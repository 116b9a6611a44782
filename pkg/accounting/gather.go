package accounting

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// maxRecordBytes bounds one node's answer.
const maxRecordBytes = 64 << 10

// Gatherer fetches the nodes' records of a job from their monitors.
type Gatherer struct {
	// Client makes the requests (its Transport decides TLS, proxies and
	// dialing). Required.
	Client *http.Client
	// BaseURL turns a node name into the monitor's base URL, e.g.
	// "https://node12:9417". Required.
	BaseURL func(node string) string
	// Concurrency bounds the requests in flight (default 64).
	Concurrency int
	// Timeout bounds each node's request, waiting for a final record
	// included (default 20s).
	Timeout time.Duration
	// Username and Password, when Username is set, are sent as HTTP basic
	// authentication.
	Username, Password string
}

// Result is what a gather found.
type Result struct {
	Records []NodeRecord
	// Unreachable are the nodes that gave no usable record, with why.
	Unreachable map[string]string
}

// Gather asks every node for its record of jobID, at most Concurrency at a
// time, each within Timeout. A node that does not answer, answers with an
// error, or sends a record of another job is listed in Unreachable; only a
// cancelled ctx fails the whole gather.
func (g *Gatherer) Gather(ctx context.Context, jobID uint32, nodes []string) (*Result, error) {
	conc := g.Concurrency
	if conc <= 0 {
		conc = 64
	}
	timeout := g.Timeout
	if timeout <= 0 {
		timeout = 20 * time.Second
	}
	res := &Result{Records: make([]NodeRecord, 0, len(nodes)), Unreachable: map[string]string{}}
	var mu sync.Mutex
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(conc, len(nodes)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for node := range work {
				rec, err := g.fetch(ctx, jobID, node, timeout)
				mu.Lock()
				if err != nil {
					res.Unreachable[node] = err.Error()
				} else {
					res.Records = append(res.Records, *rec)
				}
				mu.Unlock()
			}
		}()
	}
	for _, n := range nodes {
		select {
		case work <- n:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("gather records of job %d: %w", jobID, err)
	}
	return res, nil
}

func (g *Gatherer) fetch(ctx context.Context, jobID uint32, node string, timeout time.Duration) (*NodeRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// The monitor holds the request until the epilog's final reading is in,
	// for at most wait; leave a second for the answer to travel.
	wait := max(timeout-time.Second, 0)
	u := g.BaseURL(node) + "/v1/jobs/" + strconv.FormatUint(uint64(jobID), 10) + "/record?wait=" + url.QueryEscape(wait.String())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if g.Username != "" {
		req.SetBasicAuth(g.Username, g.Password)
	}
	resp, err := g.Client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxRecordBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusAccepted {
		return nil, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	if len(body) > maxRecordBytes {
		return nil, fmt.Errorf("record larger than %d bytes", maxRecordBytes)
	}
	var rec NodeRecord
	if err := json.Unmarshal(body, &rec); err != nil {
		return nil, fmt.Errorf("decode record: %w", err)
	}
	if rec.JobID != jobID {
		return nil, fmt.Errorf("record of job %d, not %d", rec.JobID, jobID)
	}
	if rec.Version != NodeRecordVersion {
		return nil, fmt.Errorf("record version %d, want %d", rec.Version, NodeRecordVersion)
	}
	rec.Node = node // the name Slurm knows, whatever the monitor calls itself
	return &rec, nil
}
