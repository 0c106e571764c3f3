package httpproxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// silentResolver never answers: a control plane that is down.
type silentResolver struct{}

func (silentResolver) Watch(string, func(endpoint.Set)) func() { return func() {} }

func closedPort(t *testing.T) netip.AddrPort {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := netip.MustParseAddrPort(l.Addr().String())
	l.Close()
	return ap
}

func TestErrorMapping(t *testing.T) {
	cases := []struct {
		name    string
		topo    int // index in topologies for the HTTP/1 variant; +1 for HTTP/2
		cfg     Config
		set     func(t *testing.T, e *env) // changes the control plane's answer
		path    string
		status  int
		reason  string
		maxTime time.Duration
	}{
		{name: "no endpoints", set: func(t *testing.T, e *env) {
			e.static.Set(webAuth, endpoint.Set{Exists: true})
		}, path: "/", status: 503, reason: "no-endpoints", maxTime: 500 * time.Millisecond},
		{name: "connection refused", set: func(t *testing.T, e *env) {
			e.static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: closedPort(t)}}})
		}, path: "/", status: 502, reason: "connect", maxTime: time.Second},
		{name: "request timeout", cfg: Config{RequestTimeout: 200 * time.Millisecond},
			path: "/slow", status: 504, reason: "request-timeout", maxTime: 2 * time.Second},
		{name: "upstream 5xx passes through", path: "/status?code=503", status: 503, reason: ""},
		{name: "wrong peer identity", topo: 2, path: "/", status: 502, reason: "tls", maxTime: 2 * time.Second},
	}
	for _, tc := range cases {
		for _, proto := range []Protocol{HTTP1, HTTP2} {
			tp := topologies[tc.topo+int(proto)]
			t.Run(tc.name+"/"+tp.name, func(t *testing.T) {
				e := newEnv(t, tp, envOpts{cfg: tc.cfg, wrongPeer: tc.reason == "tls"})
				if tc.set != nil {
					tc.set(t, e)
				}
				start := time.Now()
				res, body := get(t, e.client, e.url(tc.path))
				took := time.Since(start)
				if res.StatusCode != tc.status {
					t.Fatalf("status %d (%s), want %d", res.StatusCode, body, tc.status)
				}
				if got := res.Header.Get("Meshlet-Proxy-Error"); got != tc.reason {
					t.Errorf("meshlet-proxy-error %q, want %q", got, tc.reason)
				}
				if tc.maxTime > 0 && took > tc.maxTime {
					t.Errorf("took %v, want under %v", took, tc.maxTime)
				}
				if tc.reason != "" {
					if v := metricValue(t, e.out.reg, "meshlet_http_proxy_errors_total", map[string]string{"direction": "outbound", "reason": tc.reason}); v != 1 {
						t.Errorf("proxy errors{reason=%s} = %v, want 1", tc.reason, v)
					}
				}
				if v := metricValue(t, e.out.reg, "meshlet_response_total", map[string]string{
					"direction": "outbound", "authority": webAuth, "classification": "failure", "status_code": res.Status[:3]}); v != 1 {
					t.Errorf("failure responses = %v, want 1", v)
				}
			})
		}
	}
}

func TestResolveTimeout(t *testing.T) {
	cache := newCache(t, silentResolver{})
	sp := startProxy(t, Config{Balancers: cache, ConnectTimeout: 200 * time.Millisecond},
		listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP1, OrigDst: fakeOrigDst}})
	start := time.Now()
	res, _ := get(t, newClient(t, HTTP1, sp.addr), "http://"+webHost+"/")
	if res.StatusCode != 503 || res.Header.Get("Meshlet-Proxy-Error") != "resolve-timeout" {
		t.Errorf("got %d %q", res.StatusCode, res.Header.Get("Meshlet-Proxy-Error"))
	}
	if took := time.Since(start); took < 150*time.Millisecond || took > 2*time.Second {
		t.Errorf("took %v, want about the connect timeout", took)
	}
}

// An authority the control plane does not know goes to the address the
// application connected to.
func TestUnknownAuthorityGoesToOrigDst(t *testing.T) {
	a := newApp(t)
	static := &endpoint.Static{}
	static.Set("known.default:80", endpoint.Set{Exists: true}) // no endpoints: proves routing is by authority
	sp := startProxy(t, Config{Balancers: newCache(t, static)},
		listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP1, OrigDst: netip.MustParseAddrPort(a.addr)}})
	c := newClient(t, HTTP1, sp.addr)
	res, body := get(t, c, "http://example.org/")
	if res.StatusCode != 200 || body != "hello" || res.Header.Get("X-Got-Host") != "example.org" {
		t.Errorf("unknown authority: %d %q host %q", res.StatusCode, body, res.Header.Get("X-Got-Host"))
	}
	res, _ = get(t, c, "http://known.default:80/")
	if res.StatusCode != 503 {
		t.Errorf("known authority without endpoints: %d, want 503", res.StatusCode)
	}
}

// A slow response in flight when ServeConn's context ends still completes;
// then ServeConn returns.
func TestDrainFinishesInFlight(t *testing.T) {
	for _, proto := range []Protocol{HTTP1, HTTP2} {
		t.Run(proto.String(), func(t *testing.T) {
			a := newApp(t)
			p, err := New(Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			ctx, cancel := contextWithCancel()
			returned := make(chan struct{})
			go func() {
				c, err := l.Accept()
				if err != nil {
					return
				}
				p.ServeConn(ctx, c, ConnInfo{Direction: Inbound, Protocol: proto, OrigDst: netip.MustParseAddrPort(a.addr)})
				close(returned)
			}()
			client := newClient(t, proto, l.Addr().String())
			res, err := client.Get("http://" + webHost + "/stream?id=drain-" + proto.String())
			if err != nil {
				t.Fatal(err)
			}
			cancel() // the proxy is shutting down while the response streams
			time.Sleep(50 * time.Millisecond)
			close(a.chan_(a.release, "drain-"+proto.String()))
			b, err := io.ReadAll(res.Body)
			res.Body.Close()
			if err != nil || string(b) != "first;second" {
				t.Errorf("in-flight response: %q, %v", b, err)
			}
			if err := waitFor(returned, 5*time.Second); err != nil {
				t.Fatal("ServeConn did not return after the drain")
			}
		})
	}
}

func TestInvalidConfig(t *testing.T) {
	for _, cfg := range []Config{
		{InboundTarget: "no-port"},
		{ConnectTimeout: -1},
		{MaxHeaderBytes: -1},
	} {
		if _, err := New(cfg); err == nil || !strings.HasPrefix(err.Error(), "httpproxy: ") {
			t.Errorf("New(%+v) = %v, want an httpproxy error", cfg, err)
		}
	}
	_ = http.StatusOK
}

// Two proxies (one per direction) may share a registry.
func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	p1, err := New(Config{Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer p1.Close()
	p2, err := New(Config{Registry: reg})
	if err != nil {
		t.Fatalf("second proxy on the same registry: %v", err)
	}
	defer p2.Close()
	if p1.metrics.requests != p2.metrics.requests {
		t.Error("the proxies count into different collectors")
	}
}

// A request the first endpoint refused at connect goes to another one:
// with one of two endpoints down, every request without a body succeeds,
// and each retry is counted (as a connect failure on the dead endpoint's
// route, and in meshlet_http_retries_total).
func TestConnectFailureRetried(t *testing.T) {
	for _, tp := range []topology{topologies[0], topologies[1]} {
		t.Run(tp.name, func(t *testing.T) {
			e := newEnv(t, tp, envOpts{})
			dead := closedPort(t)
			e.static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{
				{Addr: dead, Protocol: endpoint.ProtocolHTTP1, Labels: map[string]string{"pod": "dead"}},
				{Addr: netip.MustParseAddrPort(e.app.addr), Protocol: endpoint.ProtocolHTTP1, Labels: map[string]string{"pod": "web-0"}},
			}})
			for i := 0; i < 30; i++ {
				res, body := get(t, e.client, e.url("/"))
				if res.StatusCode != 200 {
					t.Fatalf("request %d: %d %s (%s)", i, res.StatusCode, res.Header.Get(hdrProxyError), body)
				}
			}
			retries := metricValue(t, e.out.reg, "meshlet_http_retries_total", map[string]string{"direction": "outbound"})
			if retries < 1 {
				t.Fatalf("retries = %v, want at least 1 (the unmeasured dead endpoint is tried first)", retries)
			}
			if v := metricValue(t, e.out.reg, "meshlet_http_proxy_errors_total", map[string]string{"direction": "outbound", "reason": "connect"}); v != retries {
				t.Errorf("connect errors = %v, want %v (one per retry)", v, retries)
			}
			if v := metricValue(t, e.out.reg, "meshlet_response_total", map[string]string{"direction": "outbound", "dst_pod": "dead", "classification": "failure"}); v != retries {
				t.Errorf("failure responses on the dead endpoint = %v, want %v", v, retries)
			}
		})
	}
}

// A request with a body is not sent twice: when its endpoint refuses the
// connection, the client gets the 502.
func TestConnectFailureWithBodyNotRetried(t *testing.T) {
	e := newEnv(t, topologies[0], envOpts{})
	e.static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{
		{Addr: closedPort(t), Protocol: endpoint.ProtocolHTTP1},
		{Addr: closedPort(t), Protocol: endpoint.ProtocolHTTP1},
	}})
	res, err := e.client.Post(e.url("/echo"), "text/plain", strings.NewReader("payload"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 502 || res.Header.Get(hdrProxyError) != "connect" {
		t.Fatalf("got %d %q, want 502 connect", res.StatusCode, res.Header.Get(hdrProxyError))
	}
	if v := metricValue(t, e.out.reg, "meshlet_http_retries_total", map[string]string{"direction": "outbound"}); v != 0 {
		t.Errorf("retries = %v, want 0", v)
	}
}
