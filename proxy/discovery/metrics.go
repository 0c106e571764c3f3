package discovery

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	streams      prometheus.Gauge
	streamErrors *prometheus.CounterVec
	updates      prometheus.Counter
	invalid      prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streams: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshlet_discovery_authorities",
			Help: "Authorities followed (one destination stream each, open or reconnecting).",
		}),
		streamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_discovery_stream_errors_total",
			Help: "Destination streams that ended with an error, by gRPC code.",
		}, []string{"code"}),
		updates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshlet_discovery_updates_received_total",
			Help: "Updates received from meshlet-destination.",
		}),
		invalid: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshlet_discovery_invalid_endpoints_total",
			Help: "Endpoints or addresses in updates that were ignored because their address is invalid.",
		}),
	}
	reg.MustRegister(m.streams, m.streamErrors, m.updates, m.invalid)
	return m
}
