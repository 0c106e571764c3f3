package httpproxy

import (
	"io"
	"net/netip"
	"sync"
	"testing"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// Concurrent requests to one meshed endpoint share one HTTP/2 connection.
func TestMeshOneConnectionPerEndpoint(t *testing.T) {
	for _, tp := range topologies {
		if !tp.mesh {
			continue
		}
		t.Run(tp.name, func(t *testing.T) {
			e := newEnv(t, tp, envOpts{})
			var wg sync.WaitGroup
			errs := make(chan error, 64)
			for i := 0; i < 64; i++ {
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
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			if n := e.in.accepted.Load(); n != 1 {
				t.Errorf("inbound proxy accepted %d connections for 64 concurrent requests, want 1", n)
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
