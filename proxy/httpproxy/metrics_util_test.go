package httpproxy

import (
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// metricValue sums the samples of the counter or histogram (its count)
// name whose labels include want.
func metricValue(t testing.TB, reg *prometheus.Registry, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, lp := range m.GetLabel() {
				got[lp.GetName()] = lp.GetValue()
			}
			for k, v := range want {
				if got[k] != v {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				sum += m.Counter.GetValue()
			case m.Histogram != nil:
				sum += float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return sum
}

// Past maxRoutes label sets, new authorities share one overflow series.
func TestRouteCardinalityBound(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < maxRoutes+50; i++ {
		m.route(routeKey{dir: Inbound, authority: fmt.Sprintf("host-%d:80", i)}).requests.Inc()
	}
	if n := m.numRoutes.Load(); n != maxRoutes+1 {
		t.Errorf("%d routes, want %d (+1 overflow)", n, maxRoutes+1)
	}
	r := m.route(routeKey{dir: Inbound, authority: "new:80"})
	if r.key.authority != overflowAuthority {
		t.Errorf("authority %q past the bound, want %q", r.key.authority, overflowAuthority)
	}
}

// Any Host a client sends becomes a valid label value.
func TestAuthorityLabelSafe(t *testing.T) {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"\xd6:33807", "ok:80", string(make([]byte, 5000))} {
		r := m.route(routeKey{dir: Inbound, authority: host}) // panicked before labelSafe
		r.requests.Inc()
		r.response(200, false, "")
		if len(r.key.authority) > maxAuthorityLabel {
			t.Errorf("authority label of %d bytes", len(r.key.authority))
		}
	}
}

// Responses are counted under their own status, classification and
// grpc-status however they alternate (the last one seen is looked up first).
func TestRouteResponsesAlternate(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := m.route(routeKey{dir: Inbound, authority: "web:80"})
	seq := []respKey{{200, false, ""}, {200, false, ""}, {404, false, ""}, {200, false, "0"}, {200, true, "14"},
		{200, false, ""}, {404, false, ""}, {404, false, ""}}
	want := map[respKey]float64{}
	for _, k := range seq {
		r.response(k.status, k.failure, k.grpc)
		want[k]++
	}
	for k, n := range want {
		class := "success"
		if k.failure {
			class = "failure"
		}
		labels := map[string]string{"authority": "web:80", "status_code": fmt.Sprint(k.status), "classification": class, "grpc_status": k.grpc}
		if got := metricValue(t, reg, "meshlet_response_total", labels); got != n {
			t.Errorf("%+v: counted %v, want %v", k, got, n)
		}
	}
}
