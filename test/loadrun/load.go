package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// client returns an HTTP client for proto ("http1" or "h2c") with room for
// conns connections, and no connection limit below that.
func client(proto string, conns int) *http.Client {
	if proto == "h2c" {
		return &http.Client{Transport: h2cTransport(), Timeout: 10 * time.Second}
	}
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		DisableCompression:  true,
	}, Timeout: 10 * time.Second}
}

// result is one load run's outcome.
type result struct {
	sent, failed int64
	elapsed      time.Duration
	p50, p99     time.Duration
	spans        spans // the latency histogram, for merging runs
}

// setLatencies fills the percentiles from every request's latency.
func (r *result) setLatencies(lat []time.Duration) {
	if len(lat) == 0 {
		return
	}
	r.spans = spansOf(lat)
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	r.p50, r.p99 = lat[int(0.5*float64(len(lat)-1))], lat[int(0.99*float64(len(lat)-1))]
}

func (r *result) quantile(q float64) time.Duration {
	if q >= 0.99 {
		return r.p99
	}
	return r.p50
}

func (r *result) rps() float64 { return float64(r.sent) / r.elapsed.Seconds() }

func (r *result) String() string {
	return fmt.Sprintf("%d req (%d failed) in %v = %.0f req/s, p50 %v p99 %v", r.sent, r.failed, r.elapsed.Round(time.Millisecond),
		r.rps(), r.quantile(0.5).Round(time.Microsecond), r.quantile(0.99).Round(time.Microsecond))
}

// fixedRate sends rate requests per second for d, open loop, from workers
// each pacing its own share. A request's latency counts from when it was
// due if its worker was still busy with an earlier one then (the queueing
// a slow response causes is not hidden: no coordinated omission), and from
// when it was sent otherwise (the loader's own timer jitter is not the
// system's latency).
func fixedRate(ctx context.Context, c *http.Client, url string, rate int, d time.Duration, workers int) *result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	res := &result{}
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	interval := time.Duration(workers) * time.Second / time.Duration(rate)
	start := time.Now()
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			due := start.Add(time.Duration(i) * interval / time.Duration(workers))
			lastEnd := start
			for {
				if w := time.Until(due); w > 0 {
					select {
					case <-ctx.Done():
					case <-time.After(w):
					}
				}
				if ctx.Err() != nil {
					break
				}
				t0 := time.Now()
				from := t0
				if lastEnd.After(due) { // busy when this one fell due
					from = due
				}
				if !do(c, url) {
					failed.Add(1)
				}
				lastEnd = time.Now()
				sent.Add(1)
				local = append(local, lastEnd.Sub(from))
				due = due.Add(interval)
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.sent, res.failed = sent.Load(), failed.Load()
	res.setLatencies(lat)
	return res
}

// maxRate sends requests back to back from conc workers for d (closed loop).
func maxRate(ctx context.Context, c *http.Client, url string, d time.Duration, conc int) *result {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var lat []time.Duration
	res := &result{}
	var sent, failed atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for i := 0; i < conc; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var local []time.Duration
			for ctx.Err() == nil {
				t := time.Now()
				if !do(c, url) {
					failed.Add(1)
				}
				sent.Add(1)
				local = append(local, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.sent, res.failed = sent.Load(), failed.Load()
	res.setLatencies(lat)
	return res
}

func do(c *http.Client, url string) bool {
	resp, err := c.Get(url)
	if err != nil {
		return false
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// h2cTransport speaks HTTP/2 with prior knowledge over plain TCP.
func h2cTransport() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p, MaxIdleConnsPerHost: 1}
}
