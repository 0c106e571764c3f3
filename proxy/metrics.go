package proxy

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlet/meshlet/proxy/balance"
	"github.com/meshlet/meshlet/proxy/detect"
)

// tcpLabelNames label the TCP golden metrics: what Linkerd's tcp_* metrics
// carry, so dashboards translate. dst_* come from the endpoint's metadata
// (outbound); client_id is the mTLS peer's SPIFFE ID (inbound).
var tcpLabelNames = []string{"direction", "authority", "tls", "client_id",
	"dst_namespace", "dst_service", "dst_workload", "dst_pod", "dst_serviceaccount"}

// tcpLabels are one connection's values of tcpLabelNames.
type tcpLabels [9]string

func newTCPLabels(d Direction, authority string, tls bool, clientID string, dst map[string]string) tcpLabels {
	t := "false"
	if tls {
		t = "true"
	}
	return tcpLabels{d.String(), authority, t, clientID,
		dst["namespace"], dst["service"], dst["workload"], dst["pod"], dst["serviceaccount"]}
}

// metrics are the proxy's transport metrics. The HTTP layer registers its
// own request metrics in the same registry.
type metrics struct {
	detect         *prometheus.CounterVec // direction, protocol
	detectTimeouts *prometheus.CounterVec // direction, bytes
	refused        *prometheus.CounterVec // direction, reason
	connectErrors  *prometheus.CounterVec // direction, reason
	active         *prometheus.GaugeVec   // direction
	activeByDir    [2]prometheus.Gauge    // active's series, by Direction

	tcpOpen       *prometheus.CounterVec
	tcpClose      *prometheus.CounterVec // + error
	tcpRead       *prometheus.CounterVec
	tcpWrite      *prometheus.CounterVec
	tcpOpenActive *prometheus.GaugeVec
}

// Refusal reasons, the values of meshlet_proxy_refused_total's reason label.
const (
	reasonNoOrigDst      = "no_original_destination" // not redirected, no fallback configured
	reasonLoop           = "loop"                    // the destination is the proxy itself
	reasonPlaintext      = "plaintext_strict"        // inbound plaintext in strict mode
	reasonNoIdentity     = "tls_without_identity"    // inbound TLS while the proxy has no identity
	reasonForeignTLS     = "tls_not_mesh"            // inbound TLS with an SNI (the application's own) in strict mode
	reasonHandshake      = "tls_handshake"           // inbound mTLS handshake failed
	reasonALPN           = "tls_alpn"                // negotiated an application protocol not served
	reasonNoEndpoints    = "no_endpoints"            // the authority exists and has no ready endpoint
	reasonBadIdentity    = "bad_endpoint_identity"   // the control plane sent an unparsable SPIFFE ID
	reasonConnect        = "connect"                 // TCP connect to the endpoint failed or timed out
	reasonUpstreamTLS    = "upstream_tls"            // mTLS handshake to the endpoint failed
	reasonDetectFailed   = "detect"                  // the client reset or closed during detection
	reasonResolveTimeout = "resolve_timeout"         // no first resolution within the connect timeout (forwarded anyway)
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		detect: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_detect_total",
			Help: "Connections by detected protocol (tls, http1, http2, opaque; skipped for opaque ports; tls_passthrough for inbound TLS with an SNI, the application's own, forwarded untouched).",
		}, []string{"direction", "protocol"}),
		detectTimeouts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_detect_timeouts_total",
			Help: "Detections that timed out, by whether any byte had arrived (bytes=none is a server-speaks-first protocol on a port not listed as opaque).",
		}, []string{"direction", "bytes"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_proxy_refused_total",
			Help: "Connections closed without being forwarded, by reason.",
		}, []string{"direction", "reason"}),
		connectErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_tcp_connect_errors_total",
			Help: "Failed attempts to connect to an upstream for opaque TCP (connect or upstream_tls), retries included.",
		}, []string{"direction", "reason"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshlet_proxy_connections_active",
			Help: "Accepted connections being served (detection, HTTP or opaque TCP).",
		}, []string{"direction"}),
		tcpOpen: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_tcp_open_total",
			Help: "Opaque TCP connections forwarded (counted once the upstream connection is made).",
		}, tcpLabelNames),
		tcpClose: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_tcp_close_total",
			Help: "Opaque TCP connections ended; error is empty for an orderly end, else reset (an I/O error) or shutdown (closed at the end of the grace period).",
		}, append(append([]string{}, tcpLabelNames...), "error")),
		tcpRead: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_tcp_read_bytes_total",
			Help: "Bytes read from the client of opaque TCP connections (added when the connection ends).",
		}, tcpLabelNames),
		tcpWrite: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_tcp_write_bytes_total",
			Help: "Bytes written to the client of opaque TCP connections (added when the connection ends).",
		}, tcpLabelNames),
		tcpOpenActive: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "meshlet_tcp_open_connections",
			Help: "Opaque TCP connections currently forwarded.",
		}, tcpLabelNames),
	}
	for _, c := range []prometheus.Collector{m.detect, m.detectTimeouts, m.refused, m.connectErrors, m.active,
		m.tcpOpen, m.tcpClose, m.tcpRead, m.tcpWrite, m.tcpOpenActive} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Pre-create the series a dashboard or alert looks for, so they read 0
	// rather than absent before the first event.
	for _, d := range []Direction{Inbound, Outbound} {
		for _, p := range []detect.Protocol{detect.TLS, detect.HTTP1, detect.HTTP2, detect.Opaque} {
			m.detect.WithLabelValues(d.String(), p.String())
		}
		m.detect.WithLabelValues(d.String(), "skipped")
		m.detect.WithLabelValues(d.String(), "tls_passthrough")
		m.detectTimeouts.WithLabelValues(d.String(), "none")
		m.detectTimeouts.WithLabelValues(d.String(), "partial")
		m.activeByDir[d] = m.active.WithLabelValues(d.String())
	}
	return m, nil
}

func (m *metrics) refuse(d Direction, reason string) {
	m.refused.WithLabelValues(d.String(), reason).Inc()
}

// balancerCollector exports the balancers' state at scrape time, from
// Cache.Range, so the pick path does no metric work.
type balancerCollector struct {
	cache     *balance.Cache
	endpoints *prometheus.Desc
	cost      *prometheus.Desc
	rtt       *prometheus.Desc
	inFlight  *prometheus.Desc
}

func newBalancerCollector(c *balance.Cache) *balancerCollector {
	ep := []string{"authority", "endpoint"}
	return &balancerCollector{
		cache:     c,
		endpoints: prometheus.NewDesc("meshlet_balancer_endpoints", "Ready endpoints of each authority in use.", []string{"authority"}, nil),
		cost:      prometheus.NewDesc("meshlet_balancer_endpoint_cost_seconds", "Peak-EWMA cost of each endpoint: latency estimate × (in-flight + 1) / weight.", ep, nil),
		rtt:       prometheus.NewDesc("meshlet_balancer_endpoint_rtt_seconds", "Peak-EWMA latency estimate of each endpoint.", ep, nil),
		inFlight:  prometheus.NewDesc("meshlet_balancer_endpoint_in_flight", "Requests or connection attempts in flight to each endpoint.", ep, nil),
	}
}

func (b *balancerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- b.endpoints
	ch <- b.cost
	ch <- b.rtt
	ch <- b.inFlight
}

func (b *balancerCollector) Collect(ch chan<- prometheus.Metric) {
	b.cache.Range(func(authority string, bal *balance.Balancer) {
		eps := bal.Endpoints()
		ch <- prometheus.MustNewConstMetric(b.endpoints, prometheus.GaugeValue, float64(len(eps)), authority)
		for _, e := range eps {
			addr := e.Addr.String()
			ch <- prometheus.MustNewConstMetric(b.cost, prometheus.GaugeValue, e.Cost()/1e9, authority, addr)
			ch <- prometheus.MustNewConstMetric(b.rtt, prometheus.GaugeValue, e.RTT()/1e9, authority, addr)
			ch <- prometheus.MustNewConstMetric(b.inFlight, prometheus.GaugeValue, float64(e.InFlight()), authority, addr)
		}
	})
}
