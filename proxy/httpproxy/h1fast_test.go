package httpproxy

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// rawConn is a client connection to the outbound proxy that writes request
// bytes as given and reads responses with net/http's parser.
type rawConn struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, addr string) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	return &rawConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (r *rawConn) send(s string) {
	r.t.Helper()
	if _, err := io.WriteString(r.c, s); err != nil {
		r.t.Fatal(err)
	}
}

// expect reads one response to a request of method and checks its status
// and body.
func (r *rawConn) expect(method string, status int, body string) *http.Response {
	r.t.Helper()
	res, err := http.ReadResponse(r.br, &http.Request{Method: method})
	if err != nil {
		r.t.Fatalf("reading the response: %v", err)
	}
	b, err := io.ReadAll(res.Body)
	res.Body.Close()
	if err != nil {
		r.t.Fatalf("reading the body: %v", err)
	}
	if res.StatusCode != status || (body != "" && string(b) != body) {
		r.t.Fatalf("got %d %q, want %d %q", res.StatusCode, b, status, body)
	}
	return res
}

// One connection mixes requests the fast path serves with ones it hands to
// net/http (a chunked body, Expect: 100-continue): every one is answered, in
// order, and the connection is kept alive throughout.
func TestFastPathHandover(t *testing.T) {
	for _, tp := range []topology{topologies[0], topologies[2]} {
		t.Run(tp.name, func(t *testing.T) {
			e := newEnv(t, tp, envOpts{})
			c := dialRaw(t, e.outAddrs[HTTP1])
			c.send("GET /echo HTTP/1.1\r\nHost: " + webHost + "\r\n\r\n")
			c.expect("GET", 200, "")
			c.send("POST /echo HTTP/1.1\r\nHost: " + webHost + "\r\nContent-Length: 5\r\n\r\nhello")
			c.expect("POST", 200, "hello")
			c.send("POST /echo HTTP/1.1\r\nHost: " + webHost + "\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
			c.expect("POST", 200, "abc")
			c.send("GET /echo HTTP/1.1\r\nHost: " + webHost + "\r\n\r\n")
			res := c.expect("GET", 200, "")
			if res.Close {
				t.Error("the connection closes after a handover")
			}
			if n := e.out.accepted.Load(); n != 1 {
				t.Errorf("outbound proxy accepted %d connections, want 1", n)
			}
		})
	}
}

// Pipelined requests, sent in one write, are answered in order; a small
// response gets a Content-Length, as from net/http.
func TestFastPathPipelining(t *testing.T) {
	e := newEnv(t, topologies[0], envOpts{})
	c := dialRaw(t, e.outAddrs[HTTP1])
	var b strings.Builder
	for i := 0; i < 5; i++ {
		fmt.Fprintf(&b, "POST /echo HTTP/1.1\r\nHost: %s\r\nContent-Length: 2\r\n\r\n%02d", webHost, i)
	}
	c.send(b.String())
	for i := 0; i < 5; i++ {
		res := c.expect("POST", 200, fmt.Sprintf("%02d", i))
		if res.ContentLength != 2 {
			t.Errorf("response %d: Content-Length %d, want 2", i, res.ContentLength)
		}
	}
}

// An HTTP/1.0 request without keep-alive is answered and the connection
// closed; one with keep-alive keeps it.
func TestFastPathHTTP10(t *testing.T) {
	e := newEnv(t, topologies[0], envOpts{})
	c := dialRaw(t, e.outAddrs[HTTP1])
	c.send("GET /echo HTTP/1.0\r\nHost: " + webHost + "\r\nConnection: keep-alive\r\n\r\n")
	if res := c.expect("GET", 200, ""); res.Close {
		t.Error("keep-alive HTTP/1.0 request: connection closed")
	}
	c.send("GET /echo HTTP/1.0\r\nHost: " + webHost + "\r\n\r\n")
	if res := c.expect("GET", 200, ""); !res.Close {
		t.Error("HTTP/1.0 request: the response does not say the connection closes")
	}
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after an HTTP/1.0 response: %v, want the connection closed", err)
	}
}

// A malformed head on a connection that already carried fast requests is
// refused by net/http as on any other connection.
func TestFastPathMalformedAfterGood(t *testing.T) {
	e := newEnv(t, topologies[0], envOpts{})
	c := dialRaw(t, e.outAddrs[HTTP1])
	c.send("GET /echo HTTP/1.1\r\nHost: " + webHost + "\r\n\r\n")
	c.expect("GET", 200, "")
	c.send("GET /echo HTTP/1.1\r\nHost: " + webHost + "\r\nX A: 1\r\n\r\n")
	c.expect("GET", 400, "")
}

// rawUpstream serves each connection accepted on a loopback listener with
// handle, in a goroutine of its own, and closes it after.
func rawUpstream(t *testing.T, handle func(c net.Conn)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				handle(c)
			}()
		}
	}()
	return ln.Addr().String()
}

// closingUpstream answers each request on a connection, then closes it
// without saying so (no Connection: close): what a server does when its
// keep-alive timeout expires just after a response.
func closingUpstream(t *testing.T) (addr string, conns *atomic.Int64) {
	conns = new(atomic.Int64)
	addr = rawUpstream(t, func(c net.Conn) {
		conns.Add(1)
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	return addr, conns
}

// A pooled connection the server closed while idle is not used: requests,
// idempotent or not, go on a fresh connection and none fails.
func TestFastClientServerClosedIdle(t *testing.T) {
	addr, conns := closingUpstream(t)
	e := newEnv(t, topologies[0], envOpts{target: addr})
	for i, method := range []string{"GET", "POST", "GET", "PATCH", "DELETE", "POST"} {
		req, _ := http.NewRequest(method, e.url("/"), strings.NewReader("body"))
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatalf("request %d (%s): %v", i, method, err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("request %d (%s): %d %q %s", i, method, res.StatusCode, b, res.Header.Get(hdrProxyError))
		}
		time.Sleep(10 * time.Millisecond) // the server's close arrives
	}
	if n := conns.Load(); n != 6 {
		t.Errorf("upstream accepted %d connections, want 6 (one per request)", n)
	}
}

// The fast client refuses a header value that would split the request
// before writing anything.
func TestValidRequestRefusesSplitting(t *testing.T) {
	for name, mutate := range map[string]func(*http.Request){
		"value with CRLF": func(r *http.Request) { r.Header["X-Evil"] = []string{"a\r\nX-Injected: 1"} },
		"name with colon": func(r *http.Request) { r.Header["X-Evil: 1\r\nX-Injected"] = []string{"1"} },
		"host with CRLF":  func(r *http.Request) { r.Host = "web\r\nX-Injected: 1" },
		"bad method":      func(r *http.Request) { r.Method = "GET /x HTTP/1.1\r\n" },
	} {
		req, _ := http.NewRequest("GET", "http://web/", nil)
		mutate(req)
		if err := validRequest(req); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	req, _ := http.NewRequest("GET", "http://web/", nil)
	req.Header["X-Fine"] = []string{"a b\tc"}
	if err := validRequest(req); err != nil {
		t.Errorf("a valid request refused: %v", err)
	}
}

// scriptedUpstream answers every request on a connection with reply(i),
// where i counts the requests the upstream has seen, and keeps the
// connection open.
func scriptedUpstream(t *testing.T, reply func(i int, c net.Conn)) string {
	var n atomic.Int64
	return rawUpstream(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			reply(int(n.Add(1)-1), c)
		}
	})
}

// An upstream that sends more than its Content-Length (in the same write,
// or a moment later) never has those bytes read as the next response: the
// connection is dropped, and every request gets its own answer.
func TestFastClientStrayBytesNotReused(t *testing.T) {
	for name, late := range map[string]bool{"same write": false, "later write": true} {
		t.Run(name, func(t *testing.T) {
			addr := scriptedUpstream(t, func(i int, c net.Conn) {
				body := fmt.Sprintf("r%d", i)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"+body)
				if late {
					time.Sleep(5 * time.Millisecond)
				}
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nstray")
			})
			e := newEnv(t, topologies[0], envOpts{target: addr})
			for i := 0; i < 4; i++ {
				res, body := get(t, e.client, e.url("/"))
				if res.StatusCode != 200 || body == "stray" || len(body) != 2 || body[0] != 'r' {
					t.Fatalf("request %d: %d %q", i, res.StatusCode, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

// Interim responses are bounded: an upstream sending them without end gets
// a 502, not a proxy reading forever.
func TestFastClientInterimBound(t *testing.T) {
	addr := scriptedUpstream(t, func(_ int, c net.Conn) {
		io.WriteString(c, strings.Repeat("HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n", 50)+
			"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	e := newEnv(t, topologies[0], envOpts{target: addr})
	res, _ := get(t, e.client, e.url("/"))
	if res.StatusCode != 502 {
		t.Fatalf("status %d, want 502", res.StatusCode)
	}
}

// A large upload the upstream answers before reading it: the client gets
// the answer, told the connection closes, and the proxy stops reading the
// body for the transport (which net/http's own runs in a goroutine of its
// own) before anything else reads the connection. Run with -race.
func TestFastPathEarlyAnswerToLargeUpload(t *testing.T) {
	addr := rawUpstream(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbig")
		time.Sleep(200 * time.Millisecond)
	})
	e := newEnv(t, topologies[0], envOpts{target: addr})
	c := dialRaw(t, e.outAddrs[HTTP1])
	const size = 4 << 20
	c.send(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: %s\r\nContent-Length: %d\r\n\r\n", webHost, size))
	c.send(strings.Repeat("x", 100<<10)) // the rest never comes
	res := c.expect("POST", 413, "big")
	if !res.Close {
		t.Error("the response does not say the connection closes, with most of the body unread")
	}
	c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.br.ReadByte(); err != io.EOF {
		t.Errorf("after the answer: %v, want the connection closed", err)
	}
}
