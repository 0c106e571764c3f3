package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlet/meshlet/proxy/balance"
	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

const (
	trustDomain = "meshlet.local"
	clientID    = "spiffe://meshlet.local/ns/default/sa/client"
	webID       = "spiffe://meshlet.local/ns/default/sa/web"
	webHost     = "web.default"    // the Host the tests' clients send
	webAuth     = "web.default:80" // its authority (default port from OrigDst)
)

// fakeOrigDst is the original destination given to outbound connections: it
// supplies the default port 80; nothing listens there.
var fakeOrigDst = netip.MustParseAddrPort("127.0.0.1:80")

// servedProxy runs a Proxy behind a loopback listener, calling ServeConn
// per accepted connection as the transport layer does.
type servedProxy struct {
	p        *Proxy
	reg      *prometheus.Registry
	addr     string
	accepted *atomic.Int64 // connections accepted on addr
}

type listenOpts struct {
	info     ConnInfo
	tls      *tls.Config   // terminate mTLS first (inbound), ALPN picks the protocol
	accepted *atomic.Int64 // counts accepted connections, if set
}

func startProxy(t testing.TB, cfg Config, lo listenOpts) *servedProxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg.Registry = reg
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sp := &servedProxy{p: p, reg: reg, accepted: new(atomic.Int64)}
	lo.accepted = sp.accepted
	sp.addr = serveListener(t, p, lo)
	t.Cleanup(func() { p.Close() })
	return sp
}

// serveListener accepts on loopback and serves each connection. At cleanup
// it ends the connections' context and requires every ServeConn to return.
func serveListener(t testing.TB, p *Proxy, lo listenOpts) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			if lo.accepted != nil {
				lo.accepted.Add(1)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				info := lo.info
				if lo.tls != nil {
					tc := tls.Server(c, lo.tls)
					hctx, hcancel := context.WithTimeout(ctx, 5*time.Second)
					err := tc.HandshakeContext(hctx)
					hcancel()
					if err != nil {
						c.Close()
						return
					}
					st := tc.ConnectionState()
					info.TLS = true
					info.Protocol = HTTP1
					if st.NegotiatedProtocol == meshtls.ALPNHTTP2 {
						info.Protocol = HTTP2
					}
					if id, ok := meshtls.PeerID(st); ok {
						info.PeerID = id.String()
					}
					c = tc
				}
				// The label marks every goroutine serving the connection (and
				// those they start: handlers, upstream connections) in CPU
				// profiles, so the proxies' share can be measured apart from
				// the client's and the app's: pprof -tagfocus meshlet=proxy.
				pprof.Do(ctx, pprof.Labels("meshlet", "proxy"), func(ctx context.Context) {
					p.ServeConn(ctx, c, info)
				})
			}()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		cancel()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Errorf("ServeConn did not return after its context ended")
		}
	})
	return l.Addr().String()
}

// topology is a way through the mesh the feature tests run over.
type topology struct {
	name  string
	proto Protocol // the client's (and the app's) protocol
	mesh  bool     // outbound proxy → mTLS → inbound proxy → app; else outbound → app
}

var topologies = []topology{
	{"http1", HTTP1, false},
	{"http2", HTTP2, false},
	{"http1-mesh", HTTP1, true},
	{"http2-mesh", HTTP2, true},
}

// env is one topology, running.
type env struct {
	app      *app
	static   *endpoint.Static
	cache    *balance.Cache
	out, in  *servedProxy
	client   *http.Client
	proto    Protocol
	mesh     bool
	outAddr  string // the outbound proxy's listener for the client's protocol
	outAddrs [2]string
}

type envOpts struct {
	cfg       Config // base for both proxies
	target    string // the application's address, instead of the test app's
	wrongPeer bool   // the control plane names an identity the inbound proxy does not have
}

func newEnv(t *testing.T, tp topology, o envOpts) *env {
	t.Helper()
	e := &env{app: newApp(t), static: &endpoint.Static{}, proto: tp.proto, mesh: tp.mesh}
	e.cache = balance.NewCache(e.static, balance.Config{}, 0)
	t.Cleanup(e.cache.Close)
	target := e.app.addr
	if o.target != "" {
		target = o.target
	}
	ep := endpoint.Endpoint{Addr: netip.MustParseAddrPort(target), Protocol: endpoint.ProtocolHTTP1,
		Labels: map[string]string{"namespace": "default", "service": "web", "pod": "web-0"}}
	outCfg := o.cfg
	outCfg.Balancers = e.cache
	if tp.mesh {
		ca := meshtlstest.NewCA(t, trustDomain)
		inCfg := o.cfg
		inCfg.Identity = ca.Source(t, webID)
		inCfg.InboundTarget = target
		e.in = startProxy(t, inCfg, listenOpts{
			info: ConnInfo{Direction: Inbound},
			tls:  meshtls.ServerConfig(inCfg.Identity, meshtls.ALPNHTTP2, meshtls.ALPNHTTP1),
		})
		outCfg.Identity = ca.Source(t, clientID)
		ep.Addr = netip.MustParseAddrPort(e.in.addr)
		ep.Identity = webID
		if o.wrongPeer {
			ep.Identity = "spiffe://meshlet.local/ns/default/sa/other"
		}
		ep.Protocol = endpoint.ProtocolHTTP2
	}
	e.static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{ep}})
	e.out = startProxy(t, outCfg, listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP1, OrigDst: fakeOrigDst}})
	e.outAddrs[HTTP1] = e.out.addr
	e.outAddrs[HTTP2] = serveListener(t, e.out.p, listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP2, OrigDst: fakeOrigDst}})
	e.outAddr = e.outAddrs[tp.proto]
	e.client = newClient(t, tp.proto, e.outAddr)
	return e
}

// newClient returns a client that sends every request to addr, whatever
// the URL says, in proto: what an application behind iptables does.
func newClient(t testing.TB, proto Protocol, addr string) *http.Client {
	dial := func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}
	var rt http.RoundTripper
	if proto == HTTP2 {
		// net/http's own HTTP/2 client (a different build of the x/net
		// code the proxy uses), with prior knowledge.
		h2c := new(http.Protocols)
		h2c.SetUnencryptedHTTP2(true)
		tr := &http.Transport{DisableCompression: true, Protocols: h2c,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	} else {
		tr := &http.Transport{DisableCompression: true, Protocols: h1Only, ExpectContinueTimeout: 5 * time.Second,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return dial(ctx) }}
		t.Cleanup(tr.CloseIdleConnections)
		rt = tr
	}
	// Generous: 16 MiB through three hops under -race on a shared machine
	// has taken 10s; the bound only keeps a stall from hanging the run.
	return &http.Client{Transport: rt, Timeout: 60 * time.Second}
}

func (e *env) url(path string) string { return "http://" + webHost + path }

func get(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	res, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return res, string(b)
}

var errTimeout = errors.New("timed out")

func waitFor(ch <-chan struct{}, d time.Duration) error {
	select {
	case <-ch:
		return nil
	case <-time.After(d):
		return errTimeout
	}
}

func newCache(t testing.TB, r endpoint.Resolver) *balance.Cache {
	c := balance.NewCache(r, balance.Config{}, 0)
	t.Cleanup(c.Close)
	return c
}

func contextWithCancel() (context.Context, context.CancelFunc) {
	return context.WithCancel(context.Background())
}

func listen(t testing.TB) net.Listener {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return l
}
