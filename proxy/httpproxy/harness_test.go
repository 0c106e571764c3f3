package httpproxy

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime/pprof"
	"strings"
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

// app is the test application: an HTTP/1.1 and h2c server on loopback whose
// handlers exercise what the proxy must carry.
type app struct {
	srv  *httptest.Server
	addr string

	mu        sync.Mutex
	cancelled map[string]chan struct{} // /wait requests whose context ended, by id
	release   map[string]chan struct{} // /stream requests waiting for the client, by id
	remotes   []string                 // RemoteAddr of each request, in order
}

func newApp(t testing.TB) *app {
	a := &app{cancelled: map[string]chan struct{}{}, release: map[string]chan struct{}{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	a.srv, a.addr = srv, srv.Listener.Addr().String()
	return a
}

func (a *app) chan_(m map[string]chan struct{}, id string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := m[id]
	if !ok {
		ch = make(chan struct{})
		m[id] = ch
	}
	return ch
}

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.remotes = append(a.remotes, r.RemoteAddr)
	a.mu.Unlock()
	h := w.Header()
	h.Set("X-Got-Host", r.Host)
	h.Set("X-Got-Proto", r.Proto)
	var hop []string
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "X-Hop", "Upgrade", "Meshlet-Orig-Proto", "Te"} {
		if v := r.Header.Get(k); v != "" {
			hop = append(hop, k+"="+v)
		}
	}
	h.Set("X-Got-Hop", strings.Join(hop, ";"))
	switch r.URL.Path {
	case "/echo": // the body back, and the request trailers as headers
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for k, v := range r.Trailer {
			h.Set("X-Got-Trailer-"+k, strings.Join(v, ","))
		}
		h.Set("X-Got-Expect", r.Header.Get("Expect"))
		w.Write(body)
	case "/hash": // sha256 and length of the body
		s := sha256.New()
		n, err := io.Copy(s, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(s.Sum(nil)))
	case "/big": // n MiB of a known pattern
		var n int
		fmt.Sscan(r.URL.Query().Get("mib"), &n)
		buf := pattern(1 << 20)
		for i := 0; i < n; i++ {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	case "/trailers":
		h.Set("Trailer", "X-Declared")
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		io.WriteString(w, "body")
		h.Set("X-Declared", "d")
		h.Set(http.TrailerPrefix+"X-Undeclared", "u")
	case "/hopresp":
		h.Set("Connection", "X-Resp-Hop")
		h.Set("X-Resp-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	case "/stream": // one chunk, then wait for the client to have read it, then another
		id := r.URL.Query().Get("id")
		io.WriteString(w, "first;")
		w.(http.Flusher).Flush()
		select {
		case <-a.chan_(a.release, id):
		case <-time.After(10 * time.Second):
			return
		}
		io.WriteString(w, "second")
	case "/wait": // block until the client goes away
		id := r.URL.Query().Get("id")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(a.chan_(a.cancelled, id))
	case "/reset": // part of a body, then abort the response
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
		panic(http.ErrAbortHandler)
	case "/slow":
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	case "/status":
		var code int
		fmt.Sscan(r.URL.Query().Get("code"), &code)
		w.WriteHeader(code)
	case "/ws": // an Upgrade echo: 101, then every byte back
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	default:
		io.WriteString(w, "hello")
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}

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
	return &http.Client{Transport: rt, Timeout: 10 * time.Second}
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
