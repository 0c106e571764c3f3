package main

import (
	"context"
	"math"
	"net"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshlet/meshlet/internal/promhist"
)

// TestProxyP99 serves a histogram shaped as the proxy's over a loopback
// admin listener and checks the scraped quantiles, and that only the
// observations between two scrapes count.
func TestProxyP99(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    latencyMetric,
		Buckets: []float64{1, 2, 3, 4, 5, 10, 20},
	}, []string{"direction"})
	reg.MustRegister(h)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{})}
	go srv.Serve(ln)
	defer srv.Close()
	ctx := context.Background()

	for range 50 {
		h.WithLabelValues("inbound").Observe(9) // before the phase: must not count
	}
	before, err := scrapeLatency(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// The phase: 98 fast requests over two label sets, 2 slow ones.
	for i := range 98 {
		h.WithLabelValues([]string{"inbound", "outbound"}[i%2]).Observe(0.5)
	}
	h.WithLabelValues("outbound").Observe(7)
	h.WithLabelValues("inbound").Observe(7)
	after, err := scrapeLatency(ctx, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	phase := after.Sub(before)
	if phase.N != 100 || phase.Buckets[math.Inf(1)] != 100 {
		t.Fatalf("phase holds %v observations (+Inf bucket %v), want 100", phase.N, phase.Buckets[math.Inf(1)])
	}
	// p99: rank 99 lies in (5, 10], which holds observations 99 and 100.
	if got := phase.Quantile(0.99); math.Abs(got-7.5) > 1e-9 {
		t.Errorf("p99 = %v, want 7.5", got)
	}
	if got := phase.Quantile(0.5); math.Abs(got-50.0/98) > 1e-9 {
		t.Errorf("p50 = %v, want %v", got, 50.0/98)
	}
	// Without the subtraction the earlier 9 ms requests would dominate.
	if got := after.Quantile(0.99); got <= 9 {
		t.Errorf("whole-life p99 = %v, want above 9 (the check above must depend on Sub)", got)
	}
	got := proxyP99([]promhist.Hist{before}, []promhist.Hist{after})
	if len(got) != 1 || math.Abs(got[0]-7.5) > 1e-9 {
		t.Errorf("proxyP99 = %v", got)
	}
	if s := formatTails([]float64{3.5, 1.25}); s != "3.50 / 1.25 ms" {
		t.Errorf("formatTails = %q", s)
	}
}

// TestScrapeRefusesBadStatus: a proxy that answers /metrics with an error
// fails the run rather than reporting a tail of nothing.
func TestScrapeRefusesBadStatus(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler()}
	go srv.Serve(ln)
	defer srv.Close()
	if _, err := scrapeLatency(context.Background(), ln.Addr().String()); err == nil {
		t.Fatal("a 404 from /metrics was accepted")
	}
}
