package proxy

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

// httpApp is an HTTP/1.1 and h2c application that names the protocol it
// was reached with, the Host it saw, and the path; /slow signals arrived
// (if not nil) and then waits.
func httpApp(t testing.TB, arrived ...chan struct{}) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			for _, ch := range arrived {
				close(ch)
			}
			time.Sleep(700 * time.Millisecond)
		}
		fmt.Fprintf(w, "%s %s %s", r.Proto, r.Host, r.URL.Path)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// httpClient speaks HTTP/1.1 or h2c prior knowledge to whatever address
// the URL names, without connection reuse between tests.
func httpClient(h2c bool) *http.Client {
	tr := &http.Transport{DisableKeepAlives: !h2c}
	if h2c {
		tr.Protocols = new(http.Protocols)
		tr.Protocols.SetUnencryptedHTTP2(true)
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: tr}
}

func get(t *testing.T, client *http.Client, addr, host, path string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	req.Host = host
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s via %s: %v", path, addr, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s via %s: %d %s", path, addr, resp.StatusCode, b)
	}
	return string(b)
}

func withHTTP(c *Config) { c.NewHTTP = NewHTTPProxy }

// TestHTTPThroughListeners: detection hands HTTP/1.1 and h2c to the HTTP
// layer on both listeners; outbound routes by Host through the resolver.
func TestHTTPThroughListeners(t *testing.T) {
	checkNoLeaks(t)
	app := httpApp(t)
	var res endpoint.Static
	res.Set("web.default:80", endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: netip.MustParseAddrPort(app)}}})
	p := startProxy(t, func(c *Config) { withHTTP(c); c.Resolver = &res; c.InboundTarget = app })
	for _, h2c := range []bool{false, true} {
		client := httpClient(h2c)
		want := "HTTP/1.1"
		if h2c {
			want = "HTTP/2.0"
		}
		t.Run(want, func(t *testing.T) {
			if got := get(t, client, p.OutboundAddr().String(), "web.default:80", "/out"); !strings.HasPrefix(got, "HTTP/") || !strings.HasSuffix(got, "web.default:80 /out") {
				t.Errorf("outbound: %q", got)
			}
			if got := get(t, client, p.InboundAddr().String(), "web.default:80", "/in"); !strings.HasSuffix(got, "/in") {
				t.Errorf("inbound: %q", got)
			}
		})
		client.CloseIdleConnections()
		if n := metric(p.m.detect.WithLabelValues("outbound", map[bool]string{false: "http1", true: "http2"}[h2c])); n < 1 {
			t.Errorf("outbound detection of %s not counted", want)
		}
	}
}

// TestHTTPMeshTwoProxies is the mesh path: the client proxy sends HTTP to
// the server proxy over mTLS (ALPN h2), which terminates it and hands the
// requests to its HTTP layer with the peer's identity.
func TestHTTPMeshTwoProxies(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	app := httpApp(t)
	srv := startProxy(t, func(c *Config) { withHTTP(c); c.InboundTarget = app; c.Source = ca.Source(t, webID) })
	var res endpoint.Static
	res.Set("web.default:80", endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: srv.InboundAddr(), Identity: webID}}})
	cli := startProxy(t, func(c *Config) { withHTTP(c); c.Resolver = &res; c.Source = ca.Source(t, appID) })
	for _, h2c := range []bool{false, true} {
		client := httpClient(h2c)
		for i := range 3 {
			path := fmt.Sprintf("/mesh/%d", i)
			if got := get(t, client, cli.OutboundAddr().String(), "web.default:80", path); !strings.HasSuffix(got, path) {
				t.Errorf("h2c=%v: %q", h2c, got)
			}
		}
		client.CloseIdleConnections()
	}
	if n := metric(srv.m.detect.WithLabelValues("inbound", "tls")); n < 1 {
		t.Errorf("server proxy saw no mTLS connection (detect tls = %v)", n)
	}
	_, body := scrape(t, srv.Proxy, "/metrics")
	if !strings.Contains(body, appID) {
		t.Errorf("server proxy's metrics do not name the client identity %s", appID)
	}
}

// TestHTTPDrainFinishesInFlight: a request in flight when shutdown starts
// completes; Serve returns once it has.
func TestHTTPDrainFinishesInFlight(t *testing.T) {
	checkNoLeaks(t)
	arrived := make(chan struct{})
	app := httpApp(t, arrived)
	p := startProxy(t, func(c *Config) { withHTTP(c); c.InboundTarget = app; c.ShutdownGrace = 10 * time.Second })
	client := httpClient(false)
	done := make(chan string, 1)
	go func() {
		req, _ := http.NewRequest("GET", "http://"+p.InboundAddr().String()+"/slow", nil)
		resp, err := client.Do(req)
		if err != nil {
			done <- "error: " + err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- fmt.Sprintf("%d %s", resp.StatusCode, b)
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reached the application")
	}
	start := time.Now()
	if err := p.stop(); err != nil {
		t.Fatal(err)
	}
	if got := <-done; !strings.HasPrefix(got, "200 ") || !strings.HasSuffix(got, "/slow") {
		t.Fatalf("in-flight request during shutdown: %s", got)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("shutdown took %v with one short request in flight", el)
	}
}
