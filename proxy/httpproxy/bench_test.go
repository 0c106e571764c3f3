package httpproxy

import (
	"io"
	"net/http"
	"net/netip"
	"testing"

	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

// The benchmarks run client, proxies and app in one process, so ns/op and
// allocs/op include the client's and the app's share: compare each with
// BenchmarkDirect, the same client and app without a proxy.

func benchApp(b *testing.B) string {
	l := newStrictListenerApp(b)
	return l
}

// newStrictListenerApp is a minimal keep-alive HTTP/1.1 + h2c app answering
// "hello", as cheap as net/http gets.
func newStrictListenerApp(b *testing.B) string {
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header()["Content-Type"] = []string{"text/plain"}
		io.WriteString(w, "hello")
	})}
	srv.Protocols = new(http.Protocols)
	srv.Protocols.SetHTTP1(true)
	srv.Protocols.SetUnencryptedHTTP2(true)
	l := listen(b)
	go srv.Serve(l)
	b.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

func runClient(b *testing.B, c *http.Client, url string) {
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := c.Get(url)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 {
				b.Errorf("status %d", res.StatusCode)
				return
			}
		}
	})
}

func BenchmarkDirect(b *testing.B) {
	for _, proto := range []Protocol{HTTP1, HTTP2} {
		b.Run(proto.String(), func(b *testing.B) {
			app := benchApp(b)
			runClient(b, newClient(b, proto, app), "http://"+webHost+"/")
		})
	}
}

func BenchmarkOneProxy(b *testing.B) {
	for _, proto := range []Protocol{HTTP1, HTTP2} {
		b.Run(proto.String(), func(b *testing.B) {
			app := benchApp(b)
			static := &endpoint.Static{}
			static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: netip.MustParseAddrPort(app)}}})
			sp := startProxy(b, Config{Balancers: newCache(b, static)},
				listenOpts{info: ConnInfo{Direction: Outbound, Protocol: proto, OrigDst: fakeOrigDst}})
			runClient(b, newClient(b, proto, sp.addr), "http://"+webHost+"/")
		})
	}
}

// BenchmarkMesh is the 2-hop path: outbound proxy → HTTP/2 over mTLS →
// inbound proxy → app.
func BenchmarkMesh(b *testing.B) {
	for _, proto := range []Protocol{HTTP1, HTTP2} {
		b.Run(proto.String(), func(b *testing.B) {
			app := benchApp(b)
			ca := meshtlstest.NewCA(b, trustDomain)
			inSrc := ca.Source(b, webID)
			in := startProxy(b, Config{Identity: inSrc, InboundTarget: app}, listenOpts{
				info: ConnInfo{Direction: Inbound},
				tls:  meshtls.ServerConfig(inSrc, meshtls.ALPNHTTP2, meshtls.ALPNHTTP1),
			})
			static := &endpoint.Static{}
			static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{
				Addr: netip.MustParseAddrPort(in.addr), Identity: webID, Protocol: endpoint.ProtocolHTTP2,
				Labels: map[string]string{"namespace": "default", "service": "web", "pod": "web-0"}}}})
			out := startProxy(b, Config{Balancers: newCache(b, static), Identity: ca.Source(b, clientID)},
				listenOpts{info: ConnInfo{Direction: Outbound, Protocol: proto, OrigDst: fakeOrigDst}})
			runClient(b, newClient(b, proto, out.addr), "http://"+webHost+"/")
		})
	}
}

// BenchmarkMeshLargeBody streams 1 MiB responses over the 2-hop mTLS path:
// throughput (MB/s) and the copy buffers' allocations.
func BenchmarkMeshLargeBody(b *testing.B) {
	a := newApp(b)
	ca := meshtlstest.NewCA(b, trustDomain)
	inSrc := ca.Source(b, webID)
	in := startProxy(b, Config{Identity: inSrc, InboundTarget: a.addr}, listenOpts{
		info: ConnInfo{Direction: Inbound},
		tls:  meshtls.ServerConfig(inSrc, meshtls.ALPNHTTP2, meshtls.ALPNHTTP1),
	})
	static := &endpoint.Static{}
	static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{
		Addr: netip.MustParseAddrPort(in.addr), Identity: webID, Protocol: endpoint.ProtocolHTTP2}}})
	out := startProxy(b, Config{Balancers: newCache(b, static), Identity: ca.Source(b, clientID)},
		listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP1, OrigDst: fakeOrigDst}})
	c := newClient(b, HTTP1, out.addr)
	b.SetBytes(1 << 20)
	runClient(b, c, "http://"+webHost+"/big?mib=1")
}
