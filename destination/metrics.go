package destination

import "github.com/prometheus/client_golang/prometheus"

// metrics are the destination service's Prometheus series; see
// docs/destination.md for what each one means.
type metrics struct {
	streamsOpen  prometheus.Gauge
	topics       prometheus.Gauge
	updatesSent  *prometheus.CounterVec
	overflows    prometheus.Counter
	dropped      prometheus.Counter
	lag          prometheus.Histogram
	malformed    *prometheus.CounterVec
	events       *prometheus.CounterVec
	badConfig    *prometheus.CounterVec
	fileReloads  *prometheus.CounterVec
	backendReady prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		streamsOpen: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshlet_destination_streams_open",
			Help: "Get streams currently open.",
		}),
		topics: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshlet_destination_topics",
			Help: "Distinct resolved authorities followed by at least one stream.",
		}),
		updatesSent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_destination_updates_sent_total",
			Help: "Updates sent to streams, by type (add, remove, no_endpoints).",
		}, []string{"type"}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshlet_destination_queue_overflows_total",
			Help: "Streams ended with RESOURCE_EXHAUSTED because their update queue was full.",
		}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "meshlet_destination_updates_dropped_total",
			Help: "Updates not queued because the stream's queue was full (the stream is ended).",
		}),
		lag: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "meshlet_destination_update_lag_seconds",
			Help:    "Time from the informer (or file) event to the update being sent on a stream.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		malformed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_destination_malformed_requests_total",
			Help: "Get requests rejected with INVALID_ARGUMENT, by reason.",
		}, []string{"reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_destination_informer_events_total",
			Help: "Kubernetes informer events handled, by kind.",
		}, []string{"kind"}),
		badConfig: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_destination_invalid_config_total",
			Help: "Ignored invalid values found in cluster objects (e.g. an unparsable opaque-ports annotation), by what.",
		}, []string{"what"}),
		fileReloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_destination_file_reloads_total",
			Help: "Reads of the file backend's YAML after a change, by result (ok, error).",
		}, []string{"result"}),
		backendReady: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "meshlet_destination_ready",
			Help: "1 once the backend has its initial state (informers synced or file read).",
		}),
	}
	reg.MustRegister(m.streamsOpen, m.topics, m.updatesSent, m.overflows, m.dropped, m.lag,
		m.malformed, m.events, m.badConfig, m.fileReloads, m.backendReady)
	return m
}
