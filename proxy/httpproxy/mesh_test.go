package httpproxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

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

// HTTP/1.1 connections to one meshed endpoint are bounded: a burst of more
// concurrent requests than MeshHTTP1Conns sends the excess over the
// endpoint's HTTP/2 connection, and every request is answered.
func TestMeshHTTP1ConnsBound(t *testing.T) {
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(100 * time.Millisecond)
		io.WriteString(w, r.Proto)
	}))
	t.Cleanup(slow.Close)
	e := newEnv(t, topologies[2], envOpts{cfg: Config{MeshHTTP1Conns: 4}, target: slow.Listener.Addr().String()})
	var wg sync.WaitGroup
	errs := make(chan error, 24)
	for i := 0; i < 24; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := e.client.Get(e.url("/"))
			if err != nil {
				errs <- err
				return
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || string(b) != "HTTP/1.1" {
				errs <- fmt.Errorf("%d %q", res.StatusCode, b)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	// At most 4 HTTP/1.1 connections and the one HTTP/2 connection.
	if n := e.in.accepted.Load(); n < 2 || n > 5 {
		t.Errorf("inbound proxy accepted %d connections for 24 concurrent requests, want 2 to 5 (≤ 4 HTTP/1.1 + 1 HTTP/2)", n)
	}
}
