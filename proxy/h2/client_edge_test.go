package h2_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"github.com/meshlet/meshlet/proxy/h2"
)

// gateConn fails the first Write after it is armed, once the test releases
// it, so a test can order a write failure after other events.
type gateConn struct {
	net.Conn
	armed   atomic.Bool
	blocked chan struct{}
	release chan struct{}
}

func (g *gateConn) Write(b []byte) (int, error) {
	if g.armed.CompareAndSwap(true, false) {
		close(g.blocked)
		<-g.release
		return 0, errors.New("injected write failure")
	}
	return g.Conn.Write(b)
}

// TestClientResponseThenWriteError: the server answers (END_STREAM) while
// the request's HEADERS are still being written, then that write fails.
// RoundTrip must return the response or an error, never (nil, nil), which
// the http.RoundTripper contract forbids and callers dereference.
func TestClientResponseThenWriteError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	g := &gateConn{Conn: c, blocked: make(chan struct{}), release: make(chan struct{})}
	cc, err := h2.NewClientConn(g, h2.ClientConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	g.armed.Store(true)
	type result struct {
		resp *http.Response
		err  error
	}
	done := make(chan result, 1)
	go func() {
		req, _ := http.NewRequestWithContext(context.Background(), "GET", "http://edge.test/", nil)
		resp, err := cc.RoundTrip(req)
		done <- result{resp, err}
	}()
	within(t, g.blocked, 5*time.Second, "the request's write")

	// The server's SETTINGS and a complete response on stream 1.
	fr := http2.NewFramer(sc, nil)
	var hb bytes.Buffer
	hpack.NewEncoder(&hb).WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
	fr.WriteSettings()
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	time.Sleep(200 * time.Millisecond) // for the client's reader to take the response in
	close(g.release)

	r := within(t, done, 5*time.Second, "RoundTrip")
	switch {
	case r.err != nil:
		t.Logf("RoundTrip: %v", r.err)
	case r.resp == nil:
		t.Errorf("RoundTrip returned a nil response and a nil error")
	case r.resp.Body == nil:
		t.Errorf("RoundTrip returned a nil Body")
	default:
		r.resp.Body.Close()
		if r.resp.StatusCode != 200 {
			t.Errorf("status %d", r.resp.StatusCode)
		}
	}
}

// rawH2Server accepts one connection on a new loopback listener and plays
// an HTTP/2 server by hand: it reads the preface, sends its SETTINGS, runs
// start, then gives every frame to onFrame until that returns false or the
// connection ends. done closes when it returns.
func rawH2Server(t *testing.T, start func(fr *http2.Framer), onFrame func(fr *http2.Framer, f http2.Frame) bool) (addr string, done <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	served := make(chan struct{})
	go func() {
		defer close(served)
		sc, err := ln.Accept()
		if err != nil {
			return
		}
		defer sc.Close()
		sc.SetReadDeadline(time.Now().Add(5 * time.Second))
		pre := make([]byte, len(http2.ClientPreface))
		if _, err := io.ReadFull(sc, pre); err != nil {
			return
		}
		fr := http2.NewFramer(sc, sc)
		fr.WriteSettings()
		if start != nil {
			start(fr)
		}
		for {
			f, err := fr.ReadFrame()
			if err != nil || !onFrame(fr, f) {
				return
			}
		}
	}()
	return ln.Addr().String(), served
}

// TestClientRefusedStream: a stream the server refuses (REFUSED_STREAM)
// fails with ErrRefused, so a pool may retry it elsewhere (api.go).
func TestClientRefusedStream(t *testing.T) {
	addr, served := rawH2Server(t, nil, func(fr *http2.Framer, f http2.Frame) bool {
		if h, ok := f.(*http2.HeadersFrame); ok {
			fr.WriteRSTStream(h.StreamID, http2.ErrCodeRefusedStream)
		}
		return true
	})
	cc := dialClient(t, addr, h2.ClientConfig{})
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	_, err := cc.RoundTrip(req)
	if !errors.Is(err, h2.ErrRefused) {
		t.Errorf("refused stream: %v, want ErrRefused", err)
	}
	cc.Close()
	<-served
}

// TestClientGoAwayBeforeClose: a server's protocol error (HEADERS on a
// stream the client never opened, an even one) ends the connection with a
// GOAWAY PROTOCOL_ERROR that reaches the server before the close.
func TestClientGoAwayBeforeClose(t *testing.T) {
	got := make(chan http2.ErrCode, 1)
	addr, served := rawH2Server(t, func(fr *http2.Framer) {
		var hbuf bytes.Buffer
		enc := hpack.NewEncoder(&hbuf)
		enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 2, BlockFragment: hbuf.Bytes(), EndHeaders: true, EndStream: true})
	}, func(fr *http2.Framer, f http2.Frame) bool {
		if ga, ok := f.(*http2.GoAwayFrame); ok {
			got <- ga.ErrCode
			return false
		}
		return true
	})
	cc := dialClient(t, addr, h2.ClientConfig{})
	defer cc.Close()
	<-served
	select {
	case code := <-got:
		if code != http2.ErrCodeProtocol {
			t.Errorf("GOAWAY %v, want PROTOCOL_ERROR", code)
		}
	default:
		t.Fatal("the connection closed without a GOAWAY")
	}
}
