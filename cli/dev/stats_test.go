package dev

import (
	"context"
	"math"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/meshlet/meshlet/internal/promhist"
)

func TestQuantile(t *testing.T) {
	// 100 samples: 50 at ≤1ms, 40 in (1,10], 10 in (10,100].
	c := &counts{latency: promhist.Hist{N: 100, Buckets: map[float64]float64{1: 50, 10: 90, 100: 100, math.Inf(1): 100}}}
	if got := c.quantile(0.5); got != 1 {
		t.Errorf("p50 = %v, want 1", got)
	}
	if got := c.quantile(0.7); math.Abs(got-5.5) > 1e-9 {
		t.Errorf("p70 = %v, want 5.5 (interpolated)", got)
	}
	if got := c.quantile(0.99); math.Abs(got-91) > 1e-9 {
		t.Errorf("p99 = %v, want 91", got)
	}
	if !math.IsNaN((&counts{}).quantile(0.5)) {
		t.Error("quantile of no samples should be NaN")
	}
}

// TestScrapeGoldenMetrics serves metrics shaped like the proxy's through a
// real client_golang registry and HTTP, and checks what scrape makes of them.
func TestScrapeGoldenMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	route := []string{"direction", "authority", "tls", "client_id", "dst_namespace", "dst_service", "dst_pod", "dst_workload", "dst_serviceaccount"}
	resp := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "meshlet_response_total"}, append(append([]string{}, route...), "status_code", "classification", "grpc_status"))
	lat := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "meshlet_response_latency_ms", Buckets: []float64{1, 10, 100}}, route)
	reg.MustRegister(resp, lat)
	resp.WithLabelValues("outbound", "web:80", "true", "", "dev", "web", "web-0", "", "web", "200", "success", "").Add(90)
	resp.WithLabelValues("outbound", "web:80", "true", "", "dev", "web", "web-0", "", "web", "500", "failure", "").Add(10)
	resp.WithLabelValues("inbound", "web:80", "true", "spiffe://meshlet.local/ns/dev/sa/upstream", "", "", "", "", "", "200", "success", "").Add(7)
	resp.WithLabelValues("inbound", "web:80", "false", "", "", "", "", "", "", "200", "success", "").Add(3)
	for i := 0; i < 100; i++ {
		lat.WithLabelValues("outbound", "web:80", "true", "", "dev", "web", "web-0", "", "web").Observe(float64(i%20) / 2)
	}
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	tr, err := scrape(context.Background(), strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	c := tr.byDest[destKey{"web", "web-0"}]
	if c == nil || c.responses != 100 || c.failures != 10 || c.latency.N != 100 {
		t.Fatalf("web-0: %+v", c)
	}
	if !tr.tls[destKey{"web", "web-0"}] {
		t.Error("mTLS not seen")
	}
	if tr.clients["spiffe://meshlet.local/ns/dev/sa/upstream"] != 7 || tr.plain != 3 {
		t.Errorf("clients %v, plaintext %v", tr.clients, tr.plain)
	}
	if p50 := c.quantile(0.5); p50 < 1 || p50 > 10 {
		t.Errorf("p50 = %v, want within the (1,10] bucket", p50)
	}
}
