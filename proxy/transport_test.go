package proxy

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

func TestOutboundFallbackDirect(t *testing.T) {
	checkNoLeaks(t)
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) { c.OutboundFallback = echo })
	msg := strings.Repeat("opaque bytes ", 10000)
	got, err := roundTrip(t, p.OutboundAddr().String(), msg)
	if err != nil || got != msg {
		t.Fatalf("echo through the outbound listener: %d bytes, %v; want %d", len(got), err, len(msg))
	}
	l := newTCPLabels(Outbound, echo, false, "", nil)
	eventually(t, "close recorded", func() bool { return metric(p.m.tcpClose.WithLabelValues(append(l[:], "")...)) == 1 })
	if n := metric(p.m.tcpOpen.WithLabelValues(l[:]...)); n != 1 {
		t.Errorf("tcp_open_total = %v, want 1", n)
	}
	if r, w := metric(p.m.tcpRead.WithLabelValues(l[:]...)), metric(p.m.tcpWrite.WithLabelValues(l[:]...)); r != float64(len(msg)) || w != float64(len(msg)) {
		t.Errorf("bytes read %v, written %v; want %d each", r, w, len(msg))
	}
	if n := metric(p.m.tcpOpenActive.WithLabelValues(l[:]...)); n != 0 {
		t.Errorf("open connections gauge = %v after close", n)
	}
	if n := metric(p.m.detect.WithLabelValues("outbound", "opaque")); n != 1 {
		t.Errorf("detect opaque = %v, want 1", n)
	}
	if err := p.stop(); err != nil {
		t.Fatalf("Serve: %v", err)
	}
}

func TestOutboundNotRedirectedWithoutFallbackIsRefused(t *testing.T) {
	checkNoLeaks(t)
	p := startProxy(t, nil)
	if !refusedByProxy(t, p.OutboundAddr().String()) {
		t.Fatal("the proxy answered a connection it has nowhere to send")
	}
	eventually(t, "refusal counted", func() bool {
		return metric(p.m.refused.WithLabelValues("outbound", reasonNoOrigDst)) == 1
	})
}

func TestOutboundBalancesOverEndpoints(t *testing.T) {
	checkNoLeaks(t)
	// Two backends that answer with their name, behind one authority.
	names := map[string]string{}
	var addrs []endpoint.Endpoint
	for _, name := range []string{"a", "b"} {
		addr := serveTCP(t, func(c *net.TCPConn) {
			io.Copy(io.Discard, c)
			c.Write([]byte(name))
		})
		names[addr] = name
		addrs = append(addrs, endpoint.Endpoint{Addr: netip.MustParseAddrPort(addr),
			Labels: map[string]string{"namespace": "shop", "service": "web", "pod": "web-" + name}})
	}
	var res endpoint.Static
	res.Set("web.shop.svc.cluster.local:80", endpoint.Set{Exists: true, Endpoints: addrs})
	p := startProxy(t, func(c *Config) {
		c.OutboundFallback = "web.shop.svc.cluster.local:80"
		c.Resolver = &res
	})
	seen := map[string]int{}
	for range 20 {
		got, err := roundTrip(t, p.OutboundAddr().String(), "hi")
		if err != nil {
			t.Fatal(err)
		}
		seen[got]++
	}
	if seen["a"] == 0 || seen["b"] == 0 || seen["a"]+seen["b"] != 20 {
		t.Fatalf("connections per endpoint %v, want both used", seen)
	}
	l := newTCPLabels(Outbound, "web.shop.svc.cluster.local:80", false, "", addrs[0].Labels)
	eventually(t, "dst labels", func() bool { return metric(p.m.tcpClose.WithLabelValues(append(l[:], "")...)) == float64(seen["a"]) })
	_, body := scrape(t, p.Proxy, "/metrics")
	for _, want := range []string{
		`meshlet_balancer_endpoints{authority="web.shop.svc.cluster.local:80"} 2`,
		`meshlet_balancer_endpoint_cost_seconds{authority="web.shop.svc.cluster.local:80",endpoint="` + addrs[0].Addr.String() + `"}`,
		`meshlet_balancer_endpoint_in_flight{authority="web.shop.svc.cluster.local:80",endpoint="` + addrs[1].Addr.String() + `"} 0`,
		`dst_pod="web-a"`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestOutboundNoEndpointsIsRefused(t *testing.T) {
	checkNoLeaks(t)
	var res endpoint.Static
	res.Set("web:80", endpoint.Set{Exists: true})
	p := startProxy(t, func(c *Config) { c.OutboundFallback = "web:80"; c.Resolver = &res })
	if !refusedByProxy(t, p.OutboundAddr().String()) {
		t.Fatal("answered without endpoints")
	}
	eventually(t, "refusal counted", func() bool { return metric(p.m.refused.WithLabelValues("outbound", reasonNoEndpoints)) == 1 })
}

func TestOutboundConnectFailure(t *testing.T) {
	checkNoLeaks(t)
	// A port nobody listens on: grab one and release it.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	ln.Close()
	p := startProxy(t, func(c *Config) { c.OutboundFallback = dead })
	if !refusedByProxy(t, p.OutboundAddr().String()) {
		t.Fatal("answered for a dead destination")
	}
	eventually(t, "connect failure counted", func() bool { return metric(p.m.refused.WithLabelValues("outbound", reasonConnect)) == 1 })
}

func TestOutboundRefusesLoop(t *testing.T) {
	checkNoLeaks(t)
	// The fallback points at the proxy's own outbound listener.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	self := ln.Addr().String()
	ln.Close()
	p := startProxy(t, func(c *Config) { c.OutboundAddr = self; c.OutboundFallback = self })
	if !refusedByProxy(t, p.OutboundAddr().String()) {
		t.Fatal("forwarded a connection to itself")
	}
	eventually(t, "loop counted", func() bool { return metric(p.m.refused.WithLabelValues("outbound", reasonLoop)) == 1 })
}

func TestInboundTarget(t *testing.T) {
	checkNoLeaks(t)
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) { c.InboundTarget = echo })
	for _, msg := range []string{"\x00binary", "GET / HTTP/1.1\r\nHost: x\r\n\r\n", h2Preface()} {
		got, err := roundTrip(t, p.InboundAddr().String(), msg)
		if err != nil || got != msg {
			t.Fatalf("inbound echo of %q: %q, %v", msg, got, err)
		}
	}
	for _, proto := range []string{"opaque", "http1", "http2"} {
		if n := metric(p.m.detect.WithLabelValues("inbound", proto)); n != 1 {
			t.Errorf("detect %s = %v, want 1", proto, n)
		}
	}
}

// With IPv6 on, the outbound and inbound listeners on 127.0.0.1 have
// counterparts on [::1] at the same ports, served the same way; with it
// off, nothing listens there.
func TestIPv6Listeners(t *testing.T) {
	if ln, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback here: %v", err)
	} else {
		ln.Close()
	}
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) { c.InboundTarget = echo; c.IPv6 = true })
	in6 := net.JoinHostPort("::1", strconv.Itoa(int(p.InboundAddr().Port())))
	for _, msg := range []string{"\x00over six", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"} {
		got, err := roundTrip(t, in6, msg)
		if err != nil || got != msg {
			t.Fatalf("inbound echo over %s of %q: %q, %v", in6, msg, got, err)
		}
	}
	if !p.ownAddr(net.JoinHostPort("::1", strconv.Itoa(int(p.OutboundAddr().Port())))) {
		t.Error("the IPv6 outbound listener is not among the addresses checked for loops")
	}
	off := startProxy(t, func(c *Config) { c.InboundTarget = echo; c.IPv6 = false })
	if c, err := net.Dial("tcp6", net.JoinHostPort("::1", strconv.Itoa(int(off.InboundAddr().Port())))); err == nil {
		c.Close()
		t.Error("with IPv6 off, something listens on [::1] at the inbound port")
	}
}

func h2Preface() string { return "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" }

// TestInboundHTTPWithoutHTTPLayer: with no HTTP layer plugged in, HTTP is
// forwarded as bytes and still works end to end with a real server.
func TestInboundHTTPWithoutHTTPLayer(t *testing.T) {
	checkNoLeaks(t)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello " + r.URL.Path))
	}))
	defer app.Close()
	p := startProxy(t, func(c *Config) { c.InboundTarget = app.Listener.Addr().String() })
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := client.Get("http://" + p.InboundAddr().String() + "/x")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "hello /x" {
		t.Fatalf("body %q", b)
	}
}

func TestInboundNotRedirectedWithoutTargetIsRefused(t *testing.T) {
	checkNoLeaks(t)
	p := startProxy(t, nil)
	if !refusedByProxy(t, p.InboundAddr().String()) {
		t.Fatal("answered without a target")
	}
	eventually(t, "refusal counted", func() bool { return metric(p.m.refused.WithLabelValues("inbound", reasonNoOrigDst)) == 1 })
}

func TestInboundStrictRefusesPlaintext(t *testing.T) {
	checkNoLeaks(t)
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) { c.InboundTarget = echo; c.InboundStrict = true })
	if !refusedByProxy(t, p.InboundAddr().String()) {
		t.Fatal("strict inbound answered plaintext")
	}
	eventually(t, "refusal counted", func() bool { return metric(p.m.refused.WithLabelValues("inbound", reasonPlaintext)) == 1 })
}

// greeter is a server-speaks-first application (SMTP/MySQL-like): it sends
// its greeting on accept, then echoes.
func greeter(t *testing.T) string {
	return serveTCP(t, func(c *net.TCPConn) {
		c.Write([]byte("220 ready\r\n"))
		io.Copy(c, c)
		c.CloseWrite()
	})
}

// readGreeting connects to addr and measures how long the greeting takes.
func readGreeting(t *testing.T, addr string) time.Duration {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, len("220 ready\r\n"))
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "220 ready\r\n" {
		t.Fatalf("greeting %q, %v", buf, err)
	}
	took := time.Since(start)
	// The connection still works both ways afterwards.
	c.Write([]byte("QUIT\r\n"))
	c.(*net.TCPConn).CloseWrite()
	rest, _ := io.ReadAll(c)
	if string(rest) != "QUIT\r\n" {
		t.Fatalf("after the greeting: %q", rest)
	}
	return took
}

func TestServerSpeaksFirst(t *testing.T) {
	checkNoLeaks(t)
	const detectTimeout = 2 * time.Second
	t.Run("opaque port does not stall", func(t *testing.T) {
		app := greeter(t)
		p := startProxy(t, func(c *Config) {
			c.InboundTarget = app
			c.OpaquePorts = ports(t, app)
			c.DetectTimeout = detectTimeout
		})
		if took := readGreeting(t, p.InboundAddr().String()); took >= detectTimeout/2 {
			t.Errorf("greeting took %v on an opaque port, want no detection wait", took)
		}
		if n := metric(p.m.detect.WithLabelValues("inbound", "skipped")); n != 1 {
			t.Errorf("detect skipped = %v, want 1", n)
		}
	})
	t.Run("unlisted port waits for the detection timeout", func(t *testing.T) {
		app := greeter(t)
		p := startProxy(t, func(c *Config) { c.InboundTarget = app; c.DetectTimeout = 300 * time.Millisecond })
		// The proxy's clock starts at accept, a little before the client's.
		if took := readGreeting(t, p.InboundAddr().String()); took < 200*time.Millisecond {
			t.Errorf("greeting after %v, before the detection timeout ended: nothing can have been detected", took)
		}
		if n := metric(p.m.detectTimeouts.WithLabelValues("inbound", "none")); n != 1 {
			t.Errorf("detection timeouts (no bytes) = %v, want 1", n)
		}
	})
}

func TestDetectionTimeoutWithPartialBytes(t *testing.T) {
	checkNoLeaks(t)
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) { c.InboundTarget = echo; c.DetectTimeout = 200 * time.Millisecond })
	c, err := net.Dial("tcp", p.InboundAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	c.Write([]byte("GET /slow")) // an unfinished request line, then silence
	got := make([]byte, len("GET /slow"))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, []byte("GET /slow")) {
		t.Fatalf("echo after the detection timeout: %q, %v", got, err)
	}
	if n := metric(p.m.detectTimeouts.WithLabelValues("inbound", "partial")); n != 1 {
		t.Errorf("partial detection timeouts = %v, want 1", n)
	}
}

func TestAdminEndpoints(t *testing.T) {
	checkNoLeaks(t)
	p := startProxy(t, nil)
	eventually(t, "ready", func() bool { code, _ := scrape(t, p.Proxy, "/ready"); return code == 200 })
	if code, _ := scrape(t, p.Proxy, "/live"); code != 200 {
		t.Errorf("/live = %d", code)
	}
	code, body := scrape(t, p.Proxy, "/metrics")
	for _, want := range []string{"meshlet_detect_total", "meshlet_proxy_connections_active", "go_goroutines", "process_resident_memory_bytes"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %s", code, want)
		}
	}
}

// TestOutboundRetriesAnotherEndpoint: a failed connect is retried once on
// another endpoint, so the client never sees the dead one.
func TestOutboundRetriesAnotherEndpoint(t *testing.T) {
	checkNoLeaks(t)
	live := echoServer(t)
	dead := closedAddr(t)
	var res endpoint.Static
	res.Set("web:80", endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{
		{Addr: netip.MustParseAddrPort(dead)}, {Addr: netip.MustParseAddrPort(live)},
	}})
	p := startProxy(t, func(c *Config) { c.OutboundFallback = "web:80"; c.Resolver = &res })
	// Make the live endpoint look expensive so the first pick is the dead one.
	b := p.cache.Get("web:80")
	if err := b.Wait(t.Context()); err != nil {
		t.Fatal(err)
	}
	for _, e := range b.Endpoints() {
		if e.Addr.String() == live {
			e.Done(e.Start(), true)
		}
	}
	if got, err := roundTrip(t, p.OutboundAddr().String(), "\x00retry"); err != nil || got != "\x00retry" {
		t.Fatalf("echo with one dead endpoint: %q, %v", got, err)
	}
	if n := metric(p.m.connectErrors.WithLabelValues("outbound", reasonConnect)); n != 1 {
		t.Errorf("connect errors = %v, want 1 (the dead endpoint, then the retry)", n)
	}
	if n := metric(p.m.refused.WithLabelValues("outbound", reasonConnect)); n != 0 {
		t.Errorf("refused = %v, want 0", n)
	}
}

// TestOutboundOpaqueListenerPort: a direct connection to an outbound
// listener whose own port is listed as opaque skips detection (meshctl
// dev's opaque upstreams), so a server-speaks-first protocol does not wait.
func TestOutboundOpaqueListenerPort(t *testing.T) {
	checkNoLeaks(t)
	app := greeter(t)
	listen := freeAddr(t)
	p := startProxy(t, func(c *Config) {
		c.OutboundAddr = listen
		c.OpaquePorts = ports(t, listen)
		c.OutboundFallback = app
		c.DetectTimeout = 5 * time.Second
	})
	if took := readGreeting(t, p.OutboundAddr().String()); took > 2*time.Second {
		t.Errorf("greeting after %v: detection was not skipped", took)
	}
	if n := metric(p.m.detect.WithLabelValues("outbound", "skipped")); n != 1 {
		t.Errorf("outbound detect skipped = %v, want 1", n)
	}
}

// TestGarbageDoesNotHurt throws malformed openings at both listeners —
// broken TLS records, truncated HTTP, binary noise, resets mid-detection —
// and checks the proxy stays healthy and forgets every connection.
func TestGarbageDoesNotHurt(t *testing.T) {
	checkNoLeaks(t)
	ca := meshtlstest.NewCA(t, "meshlet.local")
	echo := echoServer(t)
	p := startProxy(t, func(c *Config) {
		withHTTP(c)
		c.InboundTarget = echo
		c.OutboundFallback = echo
		c.Source = ca.Source(t, webID)
		c.DetectTimeout = 200 * time.Millisecond
	})
	inputs := []string{
		"\x16\x03\x01\x00\x05\x01\x00\x00\x01\x00",             // a ClientHello record too short to be one
		"\x16\x03\x03\xff\xff\x01" + strings.Repeat("A", 9000), // a record longer than the peek buffer
		"GET / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: " + strings.Repeat("h", 100<<10) + "\r\n\r\n",
		h2Preface() + "\x00\x00\x04\x09\x00\x00\x00\x00\x00garbage",
		"PRI * HTTP/2.0\r\n\r\nXX",
		"\x00\x01\x02\x03",
		"",
	}
	for _, addr := range []string{p.InboundAddr().String(), p.OutboundAddr().String()} {
		for i, in := range inputs {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			c.Write([]byte(in))
			if i%2 == 0 {
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			} else {
				c.(*net.TCPConn).SetLinger(0) // reset mid-way
			}
			c.Close()
		}
	}
	eventually(t, "every connection forgotten", func() bool {
		return metric(p.m.active.WithLabelValues("inbound")) == 0 && metric(p.m.active.WithLabelValues("outbound")) == 0
	})
	if code, _ := scrape(t, p.Proxy, "/live"); code != 200 {
		t.Fatalf("/live = %d after garbage", code)
	}
	// And real traffic still flows.
	if got, err := roundTrip(t, p.OutboundAddr().String(), "\x00still fine"); err != nil || got != "\x00still fine" {
		t.Fatalf("after garbage: %q, %v", got, err)
	}
}
