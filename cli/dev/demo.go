package dev

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DemoOptions configure Demo.
type DemoOptions struct {
	Out      io.Writer
	StateDir string        // "" means a fresh temporary folder, removed afterwards
	Duration time.Duration // of the load; 0 means 20s
	Rate     int           // requests per second; 0 means 200
}

// demoInstance is one of the demo service's instances and how it behaves.
type demoInstance struct {
	delay    time.Duration
	failRate float64
	what     string
}

var demoInstances = []demoInstance{
	{5 * time.Millisecond, 0, "healthy: answers in ~5ms"},
	{50 * time.Millisecond, 0, "slow: answers in ~50ms (10× slower)"},
	{5 * time.Millisecond, 0.1, "flaky: ~5ms, but 10% of answers are 500s"},
}

// Demo runs a local mesh with a three-instance demo service (one slow, one
// flaky), sends it load through an upstream proxy, and prints how the
// traffic went: share and latency per instance, success rate, identities.
// It stops everything before it returns. It fails when the mesh did not
// carry the traffic over mTLS.
func Demo(ctx context.Context, opt DemoOptions) error {
	if opt.Out == nil {
		opt.Out = io.Discard
	}
	if opt.Duration <= 0 {
		opt.Duration = 20 * time.Second
	}
	if opt.Rate <= 0 {
		opt.Rate = 200
	}
	if opt.StateDir == "" {
		dir, err := os.MkdirTemp("", "meshlet-demo-")
		if err != nil {
			return fmt.Errorf("dev: demo: %w", err)
		}
		defer os.RemoveAll(dir)
		opt.StateDir = dir
	} else if err := os.MkdirAll(opt.StateDir, 0o700); err != nil {
		return fmt.Errorf("dev: demo: %w", err)
	}
	servers, addrs, err := startDemoServers()
	if err != nil {
		return err
	}
	defer func() {
		for _, s := range servers {
			s.Close()
		}
	}()
	listen, err := freePort()
	if err != nil {
		return err
	}
	file := filepath.Join(opt.StateDir, "mesh.yaml")
	var y strings.Builder
	y.WriteString("services:\n  demo:\n    instances:\n")
	for _, a := range addrs {
		fmt.Fprintf(&y, "      - %s\n", a)
	}
	fmt.Fprintf(&y, "upstreams:\n  - service: demo\n    listen: %s\n", listen)
	if err := os.WriteFile(file, []byte(y.String()), 0o644); err != nil {
		return fmt.Errorf("dev: demo: %w", err)
	}

	fmt.Fprintf(opt.Out, "meshlet demo: service \"demo\" with %d instances, each behind its own sidecar proxy:\n", len(addrs))
	for i, a := range addrs {
		fmt.Fprintf(opt.Out, "  demo-%d  %-16s %s\n", i, a, demoInstances[i].what)
	}
	fmt.Fprintf(opt.Out, "Starting the mesh (identity, destination, %d sidecars, 1 upstream proxy)...\n", len(addrs))

	upCtx, stop := context.WithCancel(ctx)
	defer stop()
	ready := make(chan Status, 1)
	upErr := make(chan error, 1)
	go func() {
		upErr <- Up(upCtx, Options{File: file, StateDir: filepath.Join(opt.StateDir, "state"), Out: opt.Out,
			Grace: 2 * time.Second, Ready: func(s Status) { ready <- s }})
	}()
	var status Status
	select {
	case status = <-ready:
	case err := <-upErr:
		return fmt.Errorf("dev: demo: the mesh did not start: %w", err)
	case <-ctx.Done():
		return ctx.Err()
	}

	fmt.Fprintf(opt.Out, "\nSending %d requests/s for %v to http://%s/ (the upstream proxy)...\n", opt.Rate, opt.Duration, listen)
	before, err := collect(ctx, status)
	if err != nil {
		return err
	}
	lg := runLoad(ctx, "http://"+listen+"/", opt.Rate, opt.Duration)
	after, err := collect(ctx, status)
	if err != nil {
		return err
	}
	stop()
	if err := <-upErr; err != nil {
		return fmt.Errorf("dev: demo: the mesh failed: %w", err)
	}

	rs := rows(status, before, after)
	fmt.Fprintf(opt.Out, "\nWhat the upstream proxy measured, per instance:\n")
	printTable(opt.Out, rs, 0)
	return summarise(opt.Out, rs, lg)
}

// summarise explains the figures and checks that the mesh did its job.
func summarise(w io.Writer, rs []instanceRow, lg loadResult) error {
	var total float64
	for _, r := range rs {
		total += r.c.responses
	}
	fmt.Fprintf(w, "\nWhat the client saw: %d requests, %d succeeded (%.1f%%), p50 %s, p99 %s.\n",
		lg.sent, lg.ok, 100*float64(lg.ok)/float64(max(lg.sent, 1)), lg.p(0.5), lg.p(0.99))
	var problems []string
	if total == 0 {
		problems = append(problems, "no request reached an instance through the mesh")
	}
	if len(rs) == 3 && total > 0 {
		fmt.Fprintf(w, "Peak-EWMA balancing sent %s of requests to the slow instance demo-1 and %s to the flaky demo-2 (round robin would send 33.3%% to each).\n",
			pct(rs[1].c.responses, total), pct(rs[2].c.responses, total))
	}
	for _, r := range rs {
		if r.c.responses > 0 && !r.tls {
			problems = append(problems, fmt.Sprintf("traffic to %s was not mTLS", r.pod))
		}
	}
	if len(problems) == 0 && total > 0 {
		fmt.Fprintf(w, "Every hop between proxies was mutual TLS 1.3: the upstream proxy verified each sidecar as %s, and each sidecar saw the client as %s.\n",
			rs[0].identity, strings.Join(rs[0].clients, ", "))
	}
	fmt.Fprintln(w, "The mesh is stopped; nothing is left running.")
	if len(problems) > 0 {
		return fmt.Errorf("dev: demo: %s", strings.Join(problems, "; "))
	}
	return nil
}

// startDemoServers starts the demo instances on loopback.
func startDemoServers() ([]*http.Server, []string, error) {
	var servers []*http.Server
	var addrs []string
	for i, in := range demoInstances {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			for _, s := range servers {
				s.Close()
			}
			return nil, nil, fmt.Errorf("dev: demo: %w", err)
		}
		name := fmt.Sprintf("demo-%d", i)
		in := in
		s := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			time.Sleep(in.delay)
			if rand.Float64() < in.failRate {
				http.Error(w, name+": failing on purpose", http.StatusInternalServerError)
				return
			}
			fmt.Fprintf(w, "hello from %s\n", name)
		})}
		go s.Serve(ln) //nolint:errcheck // ends with Close
		servers = append(servers, s)
		addrs = append(addrs, ln.Addr().String())
	}
	return servers, addrs, nil
}

// loadResult is what the load generator saw.
type loadResult struct {
	sent, ok  int
	latencies []time.Duration
}

func (l loadResult) p(q float64) string {
	if len(l.latencies) == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1fms", float64(l.latencies[int(q*float64(len(l.latencies)-1))])/1e6)
}

// runLoad sends GET url at rate per second for d, from a fixed pool of
// workers; it stops by itself after d (or when ctx ends).
func runLoad(ctx context.Context, url string, rate int, d time.Duration) loadResult {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	jobs := make(chan struct{})
	var mu sync.Mutex
	var res loadResult
	var sent atomic.Int64
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				start := time.Now()
				ok := get(ctx, client, url)
				el := time.Since(start)
				sent.Add(1)
				mu.Lock()
				if ok {
					res.ok++
				}
				res.latencies = append(res.latencies, el)
				mu.Unlock()
			}
		}()
	}
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-tick.C:
			select {
			case jobs <- struct{}{}:
			default: // every worker busy: the mesh is slower than the rate
			}
		}
	}
	close(jobs)
	wg.Wait()
	res.sent = int(sent.Load())
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	return res
}

func get(ctx context.Context, c *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(context.WithoutCancel(ctx), http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode == http.StatusOK
}
