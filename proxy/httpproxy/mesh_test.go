package httpproxy

import (
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// Concurrent HTTP/2 requests to one meshed endpoint share one HTTP/2
// connection. HTTP/1 requests travel as HTTP/1.1 over a pool of mTLS
// connections: a burst opens at most one per concurrent request, and the
// requests after it reuse them.
func TestMeshConnectionReuse(t *testing.T) {
	for _, tp := range topologies {
		if !tp.mesh {
			continue
		}
		t.Run(tp.name, func(t *testing.T) {
			e := newEnv(t, tp, envOpts{})
			burst := func(n int) {
				var wg sync.WaitGroup
				errs := make(chan error, n)
				for i := 0; i < n; i++ {
					wg.Add(1)
					go func() {
						defer wg.Done()
						res, err := e.client.Get(e.url("/"))
						if err != nil {
							errs <- err
							return
						}
						io.Copy(io.Discard, res.Body)
						res.Body.Close()
						if res.StatusCode != 200 {
							errs <- fmt.Errorf("status %d", res.StatusCode)
						}
					}()
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					t.Error(err)
				}
			}
			burst(64)
			first := e.in.accepted.Load()
			if tp.proto == HTTP2 && first != 1 {
				t.Errorf("inbound proxy accepted %d connections for 64 concurrent HTTP/2 requests, want 1", first)
			}
			if first < 1 || first > 64 {
				t.Errorf("inbound proxy accepted %d connections for 64 concurrent requests, want 1 to 64", first)
			}
			for i := 0; i < 20; i++ {
				burst(1)
			}
			if n := e.in.accepted.Load(); n != first {
				t.Errorf("20 sequential requests after the burst opened %d new connections, want 0", n-first)
			}
		})
	}
}

// A pooled connection is authenticated for one identity: when the control
// plane names another identity for the same address, it is not reused.
func TestMeshIdentityChangeNotReused(t *testing.T) {
	e := newEnv(t, topologies[2], envOpts{})
	if res, _ := get(t, e.client, e.url("/")); res.StatusCode != 200 {
		t.Fatalf("first request: %d", res.StatusCode)
	}
	e.static.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{
		Addr: netip.MustParseAddrPort(e.in.addr), Identity: "spiffe://meshlet.local/ns/default/sa/impostor"}}})
	res, _ := get(t, e.client, e.url("/"))
	if res.StatusCode != 502 || res.Header.Get("Meshlet-Proxy-Error") != "tls" {
		t.Errorf("after the identity changed: %d %q, want 502 tls", res.StatusCode, res.Header.Get("Meshlet-Proxy-Error"))
	}
}
