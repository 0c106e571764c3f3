package httpproxy

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
)

// routeLabels are the labels shared by the golden metrics. The set is fixed:
// destination labels the control plane does not send are "".
var routeLabels = []string{
	"direction", "authority", "tls", "client_id",
	"dst_namespace", "dst_service", "dst_pod", "dst_workload", "dst_serviceaccount",
}

// dstLabelKeys are the endpoint.Endpoint.Labels keys copied into the dst_*
// labels, in routeLabels order.
var dstLabelKeys = [5]string{"namespace", "service", "pod", "workload", "serviceaccount"}

// latencyBuckets are in milliseconds, as Linkerd's response_latency_ms.
var latencyBuckets = []float64{1, 2, 3, 4, 5, 10, 20, 30, 40, 50, 100, 200, 300, 400, 500,
	1000, 2000, 3000, 4000, 5000, 10000, 20000, 30000, 40000, 50000}

type metrics struct {
	requests    *prometheus.CounterVec
	responses   *prometheus.CounterVec
	latency     *prometheus.HistogramVec
	proxyErrors [2][numReasons]prometheus.Counter // pre-resolved: direction × reason
	protoErrors *prometheus.CounterVec
	retries     [2]prometheus.Counter // by direction

	routes    sync.Map // routeKey → *route
	numRoutes atomic.Int64
}

// maxRoutes bounds the label sets the golden metrics may create. The
// authority comes from the client's Host header, so without a bound a
// client sending random Hosts would grow memory and the scrape without
// limit; past the bound new authorities are counted as overflowAuthority.
const (
	maxRoutes         = 10000
	overflowAuthority = "(overflow)"
)

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_request_total",
			Help: "HTTP requests the proxy routed, by direction, authority, TLS, client and destination.",
		}, routeLabels),
		responses: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_response_total",
			Help: "HTTP responses, counted when the response stream ends, with status code, gRPC status and classification (failure: 5xx, gRPC status other than OK, or a broken stream).",
		}, append(append([]string{}, routeLabels...), "status_code", "classification", "grpc_status")),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "meshlet_response_latency_ms",
			Help:    "Time from receiving a request's headers to receiving its response headers, in milliseconds.",
			Buckets: latencyBuckets,
		}, routeLabels),
		protoErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "meshlet_http_protocol_errors_total",
			Help: "Malformed HTTP from clients (rejected with 400/431 or an HTTP/2 GOAWAY/RST_STREAM), by direction, protocol and reason.",
		}, []string{"direction", "protocol", "reason"}),
	}
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlet_http_proxy_errors_total",
		Help: "Requests the proxy failed itself, by direction and reason (the meshlet-proxy-error response header).",
	}, []string{"direction", "reason"})
	retries := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "meshlet_http_retries_total",
		Help: "HTTP requests sent again to another endpoint after the connection to the first failed (nothing had been sent), by direction.",
	}, []string{"direction"})
	if reg != nil {
		var err error
		if retries, err = register(reg, retries); err != nil {
			return nil, err
		}
		if m.requests, err = register(reg, m.requests); err != nil {
			return nil, err
		}
		if m.responses, err = register(reg, m.responses); err != nil {
			return nil, err
		}
		if m.latency, err = register(reg, m.latency); err != nil {
			return nil, err
		}
		if errs, err = register(reg, errs); err != nil {
			return nil, err
		}
		if m.protoErrors, err = register(reg, m.protoErrors); err != nil {
			return nil, err
		}
	}
	for _, d := range []Direction{Inbound, Outbound} {
		m.retries[d] = retries.WithLabelValues(d.String())
		for r := reason(1); r < numReasons; r++ {
			m.proxyErrors[d][r] = errs.WithLabelValues(d.String(), r.String())
		}
	}
	return m, nil
}

// register registers c, or returns the identical collector already there,
// so that several Proxies (one per direction, say) can share a registry.
func register[T prometheus.Collector](reg prometheus.Registerer, c T) (T, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(T); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("httpproxy: register metrics: %w", err)
}

func (m *metrics) proxyError(d Direction, r reason) {
	if r != reasonNone {
		m.proxyErrors[d][r].Inc()
	}
}

func (m *metrics) protocolError(d Direction, proto, reason string) {
	m.protoErrors.WithLabelValues(d.String(), proto, reason).Inc()
}

// routeKey is the value of the route labels.
type routeKey struct {
	dir       Direction
	tls       bool
	authority string
	client    string
	dst       [5]string
}

// route holds the resolved metric handles of one label set, so the hot path
// does no label hashing: requests and latency directly, responses through a
// small map of the (few) status combinations seen, the last one used first.
type route struct {
	key      routeKey
	m        *metrics
	requests prometheus.Counter
	latency  prometheus.Observer

	last      atomic.Pointer[respCounter]
	mu        sync.RWMutex
	responses map[respKey]*respCounter
}

type respCounter struct {
	key respKey
	c   prometheus.Counter
}

type respKey struct {
	status  int
	failure bool
	grpc    string
}

// route returns the handles of k, creating them on first use.
func (m *metrics) route(k routeKey) *route {
	if v, ok := m.routes.Load(k); ok {
		return v.(*route)
	}
	if a := labelSafe(k.authority); a != k.authority {
		k.authority = a
		return m.route(k)
	}
	if m.numRoutes.Load() >= maxRoutes && k.authority != overflowAuthority {
		k.authority = overflowAuthority
		return m.route(k)
	}
	lv := k.labelValues()
	r := &route{
		key:       k,
		m:         m,
		requests:  m.requests.WithLabelValues(lv...),
		latency:   m.latency.WithLabelValues(lv...),
		responses: make(map[respKey]*respCounter),
	}
	v, loaded := m.routes.LoadOrStore(k, r)
	if !loaded {
		m.numRoutes.Add(1)
	}
	return v.(*route)
}

// maxAuthorityLabel bounds the authority label: a DNS name (253) and a port.
const maxAuthorityLabel = 260

// labelSafe returns s as a valid metric label value: the authority comes
// from the client's Host header, which may hold any bytes, and client_golang
// panics on a label value that is not UTF-8 (found by FuzzHTTP1Head).
func labelSafe(s string) string {
	if len(s) > maxAuthorityLabel {
		s = s[:maxAuthorityLabel]
	}
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return s
}

func (k *routeKey) labelValues() []string {
	lv := []string{k.dir.String(), k.authority, strconv.FormatBool(k.tls), k.client,
		k.dst[0], k.dst[1], k.dst[2], k.dst[3], k.dst[4]}
	for i := 3; i < len(lv); i++ { // from the control plane and peers: checked all the same
		lv[i] = labelSafe(lv[i])
	}
	return lv
}

// response counts one finished response.
func (r *route) response(status int, failure bool, grpc string) {
	k := respKey{status, failure, grpc}
	if rc := r.last.Load(); rc != nil && rc.key == k {
		rc.c.Inc()
		return
	}
	r.mu.RLock()
	rc := r.responses[k]
	r.mu.RUnlock()
	if rc == nil {
		class := "success"
		if failure {
			class = "failure"
		}
		lv := append(r.key.labelValues(), strconv.Itoa(status), class, grpc)
		rc = &respCounter{k, r.m.responses.WithLabelValues(lv...)}
		r.mu.Lock()
		if old := r.responses[k]; old != nil {
			rc = old
		} else {
			r.responses[k] = rc
		}
		r.mu.Unlock()
	}
	r.last.Store(rc)
	rc.c.Inc()
}
