package httpproxy

import (
	"io"
	"net/http"
	"net/netip"
	"slices"
	"testing"
	"time"

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

// runSequential sends b.N requests one at a time and reports the latency
// percentiles: the proxy's added latency is the difference to Direct's.
func runSequential(b *testing.B, c *http.Client, url string) {
	lat := make([]time.Duration, 0, b.N)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		res, err := c.Get(url)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		lat = append(lat, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
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

// BenchmarkLatency compares one request at a time directly and over the
// 2-hop mTLS path (HTTP/1.1 client and app).
func BenchmarkLatency(b *testing.B) {
	b.Run("direct", func(b *testing.B) {
		runSequential(b, newClient(b, HTTP1, benchApp(b)), "http://"+webHost+"/")
	})
	b.Run("mesh", func(b *testing.B) {
		runSequential(b, newClient(b, HTTP1, meshPath(b, HTTP1)), "http://"+webHost+"/")
	})
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
			runClient(b, newClient(b, proto, meshPath(b, proto)), "http://"+webHost+"/")
		})
	}
}

// meshPath starts an app, an inbound proxy in front of it and an outbound
// proxy routing webAuth to it over mTLS; it returns the outbound listener
// for proto.
func meshPath(b *testing.B, proto Protocol) string {
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
	return out.addr
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
