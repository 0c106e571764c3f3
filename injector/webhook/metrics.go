package webhook

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Error reasons (the errors_total label).
const (
	errMalformed      = "malformed-review"
	errMethod         = "bad-method"
	errTooLarge       = "too-large"
	errDecodePod      = "decode-pod"
	errNamespace      = "namespace-lookup"
	errAnnotation     = "invalid-annotation"
	errConfig         = "config"
	errConfigReload   = "config-reload"
	errTLSReload      = "tls-reload"
	errPanic          = "panic"
	skipNotPod        = "not-a-pod"
	skipNotCreate     = "not-create"
	skipAnnotationErr = "invalid-annotation"
)

// Metrics are the webhook's Prometheus series.
type Metrics struct {
	Injected *prometheus.CounterVec
	Skipped  *prometheus.CounterVec
	Errors   *prometheus.CounterVec
	Duration prometheus.Histogram
}

// NewMetrics registers the series on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Injected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_injector_pods_injected_total",
			Help: "Pods the webhook added the proxy to, by decision reason.",
		}, []string{"reason"}),
		Skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_injector_pods_skipped_total",
			Help: "Admission requests answered without injection, by reason.",
		}, []string{"reason"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_injector_errors_total",
			Help: "Requests or background work that failed, by reason.",
		}, []string{"reason"}),
		Duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshlet_injector_request_duration_seconds",
			Help:    "Time to answer an admission request.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}),
	}
	reg.MustRegister(m.Injected, m.Skipped, m.Errors, m.Duration)
	return m
}
