package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// strictApp records every request the proxy forwards and flags any that
// is ambiguous or still carries hop-by-hop framing.
type strictApp struct {
	addr     string
	requests atomic.Int64
	mu       sync.Mutex
	bodies   []string
	bad      []string
}

func newStrictApp(t testing.TB) *strictApp {
	a := &strictApp{}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.requests.Add(1)
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.bodies = append(a.bodies, string(b))
		if len(r.TransferEncoding) > 0 && r.Header.Get("Content-Length") != "" {
			a.bad = append(a.bad, "both Transfer-Encoding and Content-Length")
		}
		for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Upgrade"} {
			if r.Header.Get(k) != "" && r.Header.Get("Upgrade") == "" {
				a.bad = append(a.bad, "hop-by-hop "+k)
			}
		}
		io.WriteString(w, "ok")
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	a.addr = l.Addr().String()
	return a
}

// panicCatcher is a slog handler that remembers net/http's "panic serving"
// lines: a proxy bug would show there.
type panicCatcher struct {
	mu     sync.Mutex
	panics []string
}

func (h *panicCatcher) Enabled(context.Context, slog.Level) bool { return true }
func (h *panicCatcher) Handle(_ context.Context, r slog.Record) error {
	r.Attrs(func(a slog.Attr) bool {
		if strings.Contains(a.Value.String(), "panic") {
			h.mu.Lock()
			h.panics = append(h.panics, a.Value.String())
			h.mu.Unlock()
		}
		return true
	})
	return nil
}
func (h *panicCatcher) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *panicCatcher) WithGroup(string) slog.Handler      { return h }

// rawExchange writes raw bytes to addr, half-closes if asked, and returns
// all the proxy answered until it closed the connection. (net/http takes a
// half-close for a client that went away.)
func rawExchange(t testing.TB, addr string, raw []byte, halfClose bool) []byte {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write(raw)
	if halfClose {
		c.(*net.TCPConn).CloseWrite()
	}
	b, _ := io.ReadAll(c)
	return b
}

func TestMalformedHTTP1(t *testing.T) {
	a := newStrictApp(t)
	sp := startProxy(t, Config{MaxHeaderBytes: 4 << 10},
		listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP1, OrigDst: netip.MustParseAddrPort(a.addr)}})
	cases := []struct {
		name, raw string
		status    string // status line prefix of the (first) response
		forwarded int64  // requests the app must see
		counted   string // protocol error reason counted, "" for none
	}{
		{"conflicting content-lengths",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
			"HTTP/1.1 400", 0, "400"},
		{"invalid content-length",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
			"HTTP/1.1 400", 0, "400"},
		{"unsupported transfer-encoding",
			"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
			"HTTP/1.1 501", 0, "501"},
		{"header too large",
			"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + strings.Repeat("x", 16<<10) + "\r\n\r\n",
			"HTTP/1.1 431", 0, "431"},
		{"space in header name",
			"GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n",
			"HTTP/1.1 400", 0, "400"},
		{"bad request line",
			"GARBAGE\r\n\r\n",
			"HTTP/1.1 400", 0, "400"},
		{"two hosts",
			"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
			"HTTP/1.1 400", 0, "400"},
		// net/http would let chunked framing win (RFC 9112 section 6.3); the
		// proxy refuses: a smuggling attempt against some other hop.
		{"content-length with chunked (smuggling attempt)",
			"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n" +
				"20\r\nGET /smuggled HTTP/1.1\r\nX: y\r\n\r\n\r\n0\r\n\r\n",
			"HTTP/1.1 400", 0, "content-length-and-transfer-encoding"},
		// A well-formed request first, on the same connection: answered and
		// forwarded; the second is refused and the connection closed.
		{"smuggling attempt after a good request",
			"POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n" +
				"POST /b HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nxyz" +
				"POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n",
			"HTTP/1.1 200", 2, "content-length-and-transfer-encoding"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := a.requests.Load()
			reasonsBefore := metricValue(t, sp.reg, "meshlet_http_protocol_errors_total", map[string]string{"reason": tc.counted})
			got := rawExchange(t, sp.addr, []byte(tc.raw), false)
			if tc.name == "smuggling attempt after a good request" &&
				(bytes.Count(got, []byte("HTTP/1.1 200")) != 2 || !bytes.Contains(got, []byte("HTTP/1.1 400"))) {
				t.Errorf("pipelined answers: %q, want 200, 200, 400", got)
			}
			if !bytes.HasPrefix(got, []byte(tc.status)) {
				t.Fatalf("response %q, want %s", got[:min(len(got), 60)], tc.status)
			}
			if n := a.requests.Load() - before; n != tc.forwarded {
				t.Errorf("app saw %d requests, want %d; proxy answered %q", n, tc.forwarded, got)
			}
			if tc.counted != "" {
				if v := metricValue(t, sp.reg, "meshlet_http_protocol_errors_total", map[string]string{"direction": "outbound", "protocol": "http1", "reason": tc.counted}); v != reasonsBefore+1 {
					t.Errorf("protocol errors{reason=%s} = %v, want %v", tc.counted, v, reasonsBefore+1)
				}
			}
		})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.bad) > 0 {
		t.Errorf("app received ambiguous requests: %v", a.bad)
	}
	if want := []string{"abc", "xyz"}; !slices.Equal(a.bodies, want) {
		t.Errorf("app received bodies %q, want %q", a.bodies, want)
	}
}

func TestMalformedHTTP2(t *testing.T) {
	a := newStrictApp(t)
	sp := startProxy(t, Config{},
		listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP2, OrigDst: netip.MustParseAddrPort(a.addr)}})
	c, err := net.Dial("tcp", sp.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, bufio.NewReader(c))
	fr.AllowIllegalWrites = true
	fr.WriteSettings()
	fr.WriteData(0, true, []byte("data on stream 0 is a connection error"))
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			t.Fatalf("no GOAWAY before %v", err)
		}
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			if ga.ErrCode != http2.ErrCodeProtocol {
				t.Errorf("GOAWAY %v, want PROTOCOL_ERROR", ga.ErrCode)
			}
			break
		}
	}
	if v := metricValue(t, sp.reg, "meshlet_http_protocol_errors_total", map[string]string{"direction": "outbound", "protocol": "http2"}); v < 1 {
		t.Errorf("HTTP/2 protocol errors counted: %v", v)
	}
	if a.requests.Load() != 0 {
		t.Error("app saw a request")
	}
}

func FuzzHTTP1Head(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc",
		"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-T: 1\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: X-A, close\r\nX-A: 1\r\n\r\n",
		"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nhello",
		"GET http://other/abs HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.0\r\n\r\n",
		"PUT / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
		"GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: b\r\n\r\n",
		"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: \xd6:33807\r\n\r\n", // not UTF-8: once a metric-label panic
	} {
		f.Add([]byte(s))
	}
	a := newStrictApp(f)
	pc := &panicCatcher{}
	sp := startProxy(f, Config{HeaderReadTimeout: time.Second, MaxHeaderBytes: 4 << 10, RequestTimeout: 2 * time.Second,
		Logger: slog.New(pc)},
		listenOpts{info: ConnInfo{Direction: Outbound, Protocol: HTTP1, OrigDst: netip.MustParseAddrPort(a.addr)}})
	f.Fuzz(func(t *testing.T, raw []byte) {
		got := rawExchange(t, sp.addr, raw, true)
		if len(got) > 0 && !bytes.HasPrefix(got, []byte("HTTP/1.1 ")) && !bytes.HasPrefix(got, []byte("HTTP/1.0 ")) {
			t.Fatalf("answer is not HTTP/1.1: %q", got[:min(len(got), 40)])
		}
		// The connection closed only after net/http logged any panic of
		// its handler: what is logged now belongs to this input.
		pc.mu.Lock()
		panics := pc.panics
		pc.panics = nil
		pc.mu.Unlock()
		if len(panics) > 0 {
			t.Fatalf("panic: %v", panics)
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		if len(a.bad) > 0 {
			t.Fatalf("forwarded an ambiguous request: %v", a.bad)
		}
	})
}
