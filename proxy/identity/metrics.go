package identity

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	expiry   prometheus.Gauge
	renewals prometheus.Counter
	failures *prometheus.CounterVec
}

// failureReasons are the values of the reason label of
// meshlet_proxy_identity_cert_renewal_failures_total: "token_file",
// "invalid_response", or the gRPC status code in snake case
// (unauthenticated, permission_denied, unavailable, ...).
func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		expiry: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshlet_proxy_identity_cert_expiry_timestamp_seconds",
			Help: "NotAfter of the proxy's current certificate, as a Unix time (0 until the first one).",
		}),
		renewals: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshlet_proxy_identity_cert_renewals_total",
			Help: "Certificates obtained from meshlet-identity, the first one included.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_proxy_identity_cert_renewal_failures_total",
			Help: "Failed attempts to obtain a certificate, by reason.",
		}, []string{"reason"}),
	}
	reg.MustRegister(m.expiry, m.renewals, m.failures)
	return m
}
