package proxy

import (
	"io"
	"net"
	"net/http"
	"net/netip"
	"testing"

	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

// sinkServer reads and discards everything; it answers one byte when the
// client half-closes, so the benchmark knows every byte arrived.
func sinkServer(tb testing.TB) string {
	return serveTCP(tb, func(c *net.TCPConn) {
		io.Copy(io.Discard, c)
		c.Write([]byte{1})
	})
}

// benchPath returns the address a client connects to for one of the
// measured paths to target: direct, one proxy (outbound, plain TCP, so
// splice), or the mesh path (client proxy → mTLS → server proxy).
func benchPath(b *testing.B, path, target string) string {
	switch path {
	case "direct":
		return target
	case "proxy":
		return startProxy(b, func(c *Config) { c.OutboundFallback = target }).OutboundAddr().String()
	case "mesh":
		ca := meshtlstest.NewCA(b, "meshlet.local")
		srv := startProxy(b, func(c *Config) { c.InboundTarget = target; c.Source = ca.Source(b, webID) })
		var res endpoint.Static
		res.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: srv.InboundAddr(), Identity: webID}}})
		return startProxy(b, func(c *Config) {
			c.OutboundFallback = webAuth
			c.Resolver = &res
			c.Source = ca.Source(b, appID)
		}).OutboundAddr().String()
	}
	b.Fatalf("unknown path %s", path)
	return ""
}

// BenchmarkOpaqueThroughput streams 64 KiB writes through each path on one
// connection; MB/s is the figure.
func BenchmarkOpaqueThroughput(b *testing.B) {
	for _, path := range []string{"direct", "proxy", "mesh"} {
		b.Run(path, func(b *testing.B) {
			addr := benchPath(b, path, sinkServer(b))
			c, err := net.Dial("tcp", addr)
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			chunk := make([]byte, 64<<10)
			chunk[0] = 0 // not an HTTP prefix: detection decides at once
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			c.(*net.TCPConn).CloseWrite()
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				b.Fatalf("sink's acknowledgement: %v", err)
			}
		})
	}
}

// BenchmarkOpaqueConnection measures a whole short connection through each
// path: connect, detection, (mTLS handshake), one byte each way, close.
func BenchmarkOpaqueConnection(b *testing.B) {
	for _, path := range []string{"direct", "proxy", "mesh"} {
		b.Run(path, func(b *testing.B) {
			addr := benchPath(b, path, sinkServer(b))
			one := make([]byte, 1)
			b.ReportAllocs()
			for b.Loop() {
				c, err := net.Dial("tcp", addr)
				if err != nil {
					b.Fatal(err)
				}
				c.Write([]byte{0})
				c.(*net.TCPConn).CloseWrite()
				if _, err := io.ReadFull(c, one); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}

// BenchmarkHTTPPath measures HTTP/1.1 keep-alive requests (small response)
// through the whole stack — listeners, detection, the HTTP layer — on each
// path: direct, one proxy (outbound), and the mesh path (client proxy → h2
// over mTLS → server proxy → application). Run with -cpu 1,2 for latency vs
// throughput.
func BenchmarkHTTPPath(b *testing.B) {
	for _, path := range []string{"direct", "proxy", "mesh"} {
		b.Run(path, func(b *testing.B) {
			app := httpApp(b)
			var res endpoint.Static
			addr := app
			switch path {
			case "proxy":
				res.Set("web.default:80", endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: netip.MustParseAddrPort(app)}}})
				addr = startProxy(b, func(c *Config) { withHTTP(c); c.Resolver = &res }).OutboundAddr().String()
			case "mesh":
				ca := meshtlstest.NewCA(b, "meshlet.local")
				srv := startProxy(b, func(c *Config) { withHTTP(c); c.InboundTarget = app; c.Source = ca.Source(b, webID) })
				res.Set("web.default:80", endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: srv.InboundAddr(), Identity: webID}}})
				addr = startProxy(b, func(c *Config) { withHTTP(c); c.Resolver = &res; c.Source = ca.Source(b, appID) }).OutboundAddr().String()
			}
			tr := &http.Transport{MaxIdleConnsPerHost: 64}
			defer tr.CloseIdleConnections()
			client := &http.Client{Transport: tr}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				req, _ := http.NewRequest("GET", "http://"+addr+"/bench", nil)
				req.Host = "web.default:80"
				for pb.Next() {
					resp, err := client.Do(req)
					if err != nil {
						b.Error(err)
						return
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 {
						b.Errorf("status %d", resp.StatusCode)
						return
					}
				}
			})
		})
	}
}
