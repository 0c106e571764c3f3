package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

const (
	webID   = "spiffe://meshlet.local/ns/default/sa/web"
	appID   = "spiffe://meshlet.local/ns/default/sa/app"
	otherID = "spiffe://meshlet.local/ns/default/sa/other"
	webAuth = "web.default.svc.cluster.local:8080"
)

// meshPair starts a server-side proxy (identity web, forwarding to the
// application at target) and a client-side proxy whose opaque outbound
// connections go to webAuth, resolved to the server proxy's inbound
// listener with identity endpointID.
func meshPair(t *testing.T, ca *meshtlstest.CA, target, endpointID string, client, server func(*Config)) (cli, srv *running) {
	t.Helper()
	srv = startProxy(t, func(c *Config) {
		c.InboundTarget = target
		c.Source = ca.Source(t, webID)
		if server != nil {
			server(c)
		}
	})
	var res endpoint.Static
	res.Set(webAuth, endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{
		Addr: srv.InboundAddr(), Identity: endpointID, Labels: map[string]string{"service": "web"},
	}}})
	cli = startProxy(t, func(c *Config) {
		c.OutboundFallback = webAuth
		c.Resolver = &res
		c.Source = ca.Source(t, appID)
		if client != nil {
			client(c)
		}
	})
	return cli, srv
}

func TestMeshTLSBetweenProxies(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	echo := echoServer(t)
	cli, srv := meshPair(t, ca, echo, webID, nil, nil)
	msg := strings.Repeat("through two proxies over mTLS ", 5000)
	got, err := roundTrip(t, cli.OutboundAddr().String(), msg)
	if err != nil || got != msg {
		t.Fatalf("echo through the mesh: %d bytes, %v; want %d", len(got), err, len(msg))
	}
	out := newTCPLabels(Outbound, webAuth, true, "", map[string]string{"service": "web"})
	in := newTCPLabels(Inbound, echo, true, appID, nil)
	eventually(t, "both sides closed", func() bool {
		return metric(cli.m.tcpClose.WithLabelValues(append(out[:], "")...)) == 1 &&
			metric(srv.m.tcpClose.WithLabelValues(append(in[:], "")...)) == 1
	})
	if n := metric(srv.m.tcpRead.WithLabelValues(in[:]...)); n != float64(len(msg)) {
		t.Errorf("server proxy read %v bytes from its mTLS client, want %d", n, len(msg))
	}
	if n := metric(srv.m.detect.WithLabelValues("inbound", "tls")); n != 1 {
		t.Errorf("server proxy detected TLS %v times, want 1", n)
	}
}

func TestMeshWrongIdentityRefused(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	echo := echoServer(t)
	// The control plane says the endpoint is "other", but the proxy there
	// proves "web": the client must not talk to it.
	cli, srv := meshPair(t, ca, echo, otherID, nil, nil)
	if !refusedByProxy(t, cli.OutboundAddr().String()) {
		t.Fatal("client proxy forwarded to an endpoint with the wrong identity")
	}
	eventually(t, "refusals counted", func() bool {
		return metric(cli.m.refused.WithLabelValues("outbound", reasonUpstreamTLS)) == 1 &&
			metric(srv.m.refused.WithLabelValues("inbound", reasonHandshake)) == 1
	})
}

func TestMeshForeignCARefused(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	rogue := meshtlstest.NewCA(t, "meshlet.local")
	echo := echoServer(t)
	srv := startProxy(t, func(c *Config) { c.InboundTarget = echo; c.Source = ca.Source(t, webID) })
	// A client with the right name from the wrong CA dials the inbound
	// listener directly.
	conn, err := tls.Dial("tcp", srv.InboundAddr().String(),
		meshtls.ClientConfig(rogue.Source(t, appID), spiffeid.RequireFromString(webID), meshtls.ALPNOpaque))
	if err == nil {
		// TLS 1.3: the server's verdict on the client certificate comes
		// with the first read.
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		conn.Write([]byte("x"))
		_, err = conn.Read(make([]byte, 1))
		conn.Close()
	}
	if err == nil {
		t.Fatal("the inbound proxy accepted a client certificate from a foreign CA")
	}
	eventually(t, "handshake refusal counted", func() bool {
		return metric(srv.m.refused.WithLabelValues("inbound", reasonHandshake)) == 1
	})
}

func TestMeshPermissiveAndStrict(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	echo := echoServer(t)
	// The client proxy has no identity, so it connects in plaintext.
	noID := func(c *Config) { c.Source = nil }
	t.Run("permissive accepts plaintext", func(t *testing.T) {
		cli, srv := meshPair(t, ca, echo, webID, noID, nil)
		if got, err := roundTrip(t, cli.OutboundAddr().String(), "plain"); err != nil || got != "plain" {
			t.Fatalf("plaintext through a permissive inbound: %q, %v", got, err)
		}
		in := newTCPLabels(Inbound, echo, false, "", nil)
		eventually(t, "plaintext counted", func() bool { return metric(srv.m.tcpClose.WithLabelValues(append(in[:], "")...)) == 1 })
	})
	t.Run("strict refuses plaintext", func(t *testing.T) {
		cli, srv := meshPair(t, ca, echo, webID, noID, func(c *Config) { c.InboundStrict = true })
		if !refusedByProxy(t, cli.OutboundAddr().String()) {
			t.Fatal("strict inbound accepted plaintext")
		}
		eventually(t, "strict refusal", func() bool { return metric(srv.m.refused.WithLabelValues("inbound", reasonPlaintext)) == 1 })
	})
	t.Run("strict accepts mTLS", func(t *testing.T) {
		cli, _ := meshPair(t, ca, echo, webID, nil, func(c *Config) { c.InboundStrict = true })
		if got, err := roundTrip(t, cli.OutboundAddr().String(), "secret"); err != nil || got != "secret" {
			t.Fatalf("mTLS through a strict inbound: %q, %v", got, err)
		}
	})
}

// TestMeshHTTPALPNWithoutHTTPLayer: a peer that negotiates h2 carries the
// proxies' HTTP/2, which cannot be passed to the application as bytes.
func TestMeshHTTPALPNWithoutHTTPLayer(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	srv := startProxy(t, func(c *Config) { c.InboundTarget = echoServer(t); c.Source = ca.Source(t, webID) })
	conn, err := tls.Dial("tcp", srv.InboundAddr().String(),
		meshtls.ClientConfig(ca.Source(t, appID), spiffeid.RequireFromString(webID), meshtls.ALPNHTTP2))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	if n, err := conn.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes, want the connection closed", n)
	}
	eventually(t, "ALPN refusal", func() bool { return metric(srv.m.refused.WithLabelValues("inbound", reasonALPN)) == 1 })
}

// TestInboundAppTLSWithoutIdentity: a proxy without identity passes the
// application's own TLS through untouched.
func TestInboundAppTLSWithoutIdentity(t *testing.T) {
	checkNoLeaks(t)
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls app") }))
	defer app.Close()
	srv := startProxy(t, func(c *Config) { c.InboundTarget = app.Listener.Addr().String() })
	client := app.Client()
	client.Transport.(*http.Transport).DisableKeepAlives = true
	resp, err := client.Get("https://" + srv.InboundAddr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "tls app" {
		t.Fatalf("body %q", b)
	}
}

func TestReadyWaitsForIdentity(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	src := ca.Source(t, webID)
	svid, _ := src.GetX509SVID()
	src.SetSVID(nil)
	p := startProxy(t, func(c *Config) { c.Source = src })
	if code, body := scrape(t, p.Proxy, "/ready"); code != http.StatusServiceUnavailable || !strings.Contains(body, "identity") {
		t.Fatalf("/ready without an SVID = %d %q, want 503 naming the identity", code, body)
	}
	src.SetSVID(svid)
	if code, _ := scrape(t, p.Proxy, "/ready"); code != http.StatusOK {
		t.Fatalf("/ready with an SVID = %d, want 200", code)
	}
	if code, _ := scrape(t, p.Proxy, "/live"); code != http.StatusOK {
		t.Fatalf("/live = %d", code)
	}
}

// TestInboundAppTLSWithIdentity: a proxy with identity still passes through
// an unmeshed client's TLS to a TLS application when the ClientHello names
// a host (SNI), which mesh peers never do; strict mode refuses it.
func TestInboundAppTLSWithIdentity(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	app := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "tls app via "+r.Host) }))
	defer app.Close()
	for _, strict := range []bool{false, true} {
		t.Run(map[bool]string{false: "permissive", true: "strict"}[strict], func(t *testing.T) {
			srv := startProxy(t, func(c *Config) {
				c.InboundTarget = app.Listener.Addr().String()
				c.Source = ca.Source(t, webID)
				c.InboundStrict = strict
			})
			client := app.Client()
			tr := client.Transport.(*http.Transport).Clone()
			tr.DisableKeepAlives = true
			tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
				var d net.Dialer
				return d.DialContext(ctx, "tcp", srv.InboundAddr().String())
			}
			client.Transport = tr
			// httptest's certificate is valid for example.com: the client sends it as SNI.
			resp, err := client.Get("https://example.com/")
			if strict {
				if err == nil {
					resp.Body.Close()
					t.Fatal("strict inbound passed application TLS through")
				}
				eventually(t, "strict refusal", func() bool { return metric(srv.m.refused.WithLabelValues("inbound", reasonForeignTLS)) == 1 })
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if string(b) != "tls app via example.com" {
				t.Fatalf("body %q", b)
			}
			if n := metric(srv.m.detect.WithLabelValues("inbound", "tls_passthrough")); n != 1 {
				t.Errorf("tls_passthrough = %v, want 1", n)
			}
		})
	}
}
