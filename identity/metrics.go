package identity

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the identity service's Prometheus series, registered on the
// registry passed to NewMetrics (never the global default).
type Metrics struct {
	issued        prometheus.Counter
	refused       *prometheus.CounterVec
	duration      prometheus.Histogram
	issuerExpiry  prometheus.Gauge
	issuerReloads *prometheus.CounterVec
	tokenReloads  *prometheus.CounterVec
	joinTokens    prometheus.Gauge
}

// NewMetrics creates the metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		issued: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshlet_identity_certify_issued_total",
			Help: "Certificates issued by Certify.",
		}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_identity_certify_refused_total",
			Help: "Certify calls refused, by reason (see docs/identity.md).",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshlet_identity_certify_duration_seconds",
			Help:    "Time to handle a Certify call, token review included.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		issuerExpiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshlet_identity_issuer_expiry_timestamp_seconds",
			Help: "NotAfter of the issuer certificate in use, as a Unix time.",
		}),
		issuerReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_identity_issuer_reloads_total",
			Help: "Loads of the trust anchor and issuer files, by result (ok, error).",
		}, []string{"result"}),
		tokenReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_identity_join_tokens_reloads_total",
			Help: "Loads of the join tokens file (local mode), by result (ok, error).",
		}, []string{"result"}),
		joinTokens: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshlet_identity_join_tokens",
			Help: "Join tokens currently accepted (local mode).",
		}),
	}
	for _, r := range Reasons() {
		m.refused.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "error"} {
		m.issuerReloads.WithLabelValues(r)
		m.tokenReloads.WithLabelValues(r)
	}
	reg.MustRegister(m.issued, m.refused, m.duration, m.issuerExpiry, m.issuerReloads, m.tokenReloads, m.joinTokens)
	return m
}
