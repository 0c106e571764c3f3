package inject

import "github.com/prometheus/client_golang/prometheus"

// Metrics counts what Transform did with each object (and each input
// rejected as invalid). meshctl is a
// short-lived command, so these matter to programs that embed the
// transformer (and to tests); meshctl itself registers them on a private
// registry.
type Metrics struct {
	documents *prometheus.CounterVec
}

// NewMetrics creates the counters and registers them on reg (nil: not
// registered).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{documents: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlet_meshctl_inject_objects_total",
		Help: "Objects seen by meshctl inject/uninject, by result: changed, unchanged, skipped (a workload left alone on purpose), passthrough (not a workload), invalid (the input was rejected).",
	}, []string{"result"})}
	for _, r := range []string{"changed", "unchanged", "skipped", "passthrough", "invalid"} {
		m.documents.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.documents)
	}
	return m
}

func (m *Metrics) count(result string) {
	if m != nil {
		m.documents.WithLabelValues(result).Inc()
	}
}
