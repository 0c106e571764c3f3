package tcp

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/detect"
	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
	"github.com/meshlet/meshlet/proxy/rawio"
)

func listen(tb testing.TB) *net.TCPListener {
	tb.Helper()
	ln, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { ln.Close() })
	return ln
}

// pair returns both ends of a loopback TCP connection.
func pair(tb testing.TB) (*net.TCPConn, *net.TCPConn) {
	tb.Helper()
	ln := listen(tb)
	c, err := net.DialTCP("tcp", nil, ln.Addr().(*net.TCPAddr))
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ln.AcceptTCP()
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

type forwarded struct {
	st  Stats
	err error
}

// through wires app ⇄ proxyClientSide ... proxyServerSide ⇄ backend: the
// returned app conn talks through Forward to the returned backend conn.
func through(tb testing.TB, ctx context.Context, wrapClient, wrapServer func(net.Conn) net.Conn) (app, backend net.Conn, done <-chan forwarded) {
	tb.Helper()
	appC, proxyIn := pair(tb)
	proxyOut, backS := pair(tb)
	ch := make(chan forwarded, 1)
	var in, out net.Conn = proxyIn, proxyOut
	if wrapClient != nil {
		in = wrapClient(proxyIn)
	}
	if wrapServer != nil {
		out = wrapServer(proxyOut)
	}
	go func() {
		st, err := Forward(ctx, in, out)
		ch <- forwarded{st, err}
	}()
	return appC, backS, ch
}

func wait(tb testing.TB, done <-chan forwarded) forwarded {
	tb.Helper()
	select {
	case f := <-done:
		return f
	case <-time.After(10 * time.Second):
		tb.Fatal("Forward did not return")
		return forwarded{}
	}
}

func TestForwardHalfClose(t *testing.T) {
	app, backend, done := through(t, context.Background(), nil, nil)
	req := []byte("request that ends with a half-close")
	if _, err := app.Write(req); err != nil {
		t.Fatal(err)
	}
	app.(*net.TCPConn).CloseWrite()
	// The backend sees the request, then EOF, while it can still answer.
	got, err := io.ReadAll(backend)
	if err != nil || !bytes.Equal(got, req) {
		t.Fatalf("backend read %q, %v", got, err)
	}
	resp := bytes.Repeat([]byte("response "), 1000)
	if _, err := backend.Write(resp); err != nil {
		t.Fatalf("backend write after client half-close: %v", err)
	}
	backend.Close()
	got, err = io.ReadAll(app)
	if err != nil || !bytes.Equal(got, resp) {
		t.Fatalf("app read %d bytes, %v; want %d", len(got), err, len(resp))
	}
	f := wait(t, done)
	if f.err != nil {
		t.Errorf("Forward: %v", f.err)
	}
	if f.st.FromClient != int64(len(req)) || f.st.ToClient != int64(len(resp)) {
		t.Errorf("stats %+v, want %d up and %d down", f.st, len(req), len(resp))
	}
}

func TestForwardServerHalfCloseFirst(t *testing.T) {
	// Server speaks first and half-closes; the client still sends after.
	app, backend, done := through(t, context.Background(), nil, nil)
	backend.Write([]byte("220 greeting\r\n"))
	backend.(*net.TCPConn).CloseWrite()
	got, err := io.ReadAll(app)
	if err != nil || string(got) != "220 greeting\r\n" {
		t.Fatalf("app read %q, %v", got, err)
	}
	app.Write([]byte("QUIT\r\n"))
	app.Close()
	got, err = io.ReadAll(backend)
	if err != nil || string(got) != "QUIT\r\n" {
		t.Fatalf("backend read %q, %v", got, err)
	}
	if f := wait(t, done); f.err != nil || f.st.FromClient != 6 || f.st.ToClient != 14 {
		t.Errorf("Forward = %+v", f)
	}
}

func TestForwardPeekedBytesFirst(t *testing.T) {
	appC, proxyIn := pair(t)
	proxyOut, backend := pair(t)
	appC.Write([]byte("\x00peeked-"))
	dc, res, err := detect.Detect(proxyIn, time.Second)
	if err != nil || res.Protocol != detect.Opaque {
		t.Fatalf("Detect: %+v %v", res, err)
	}
	done := make(chan forwarded, 1)
	go func() { st, err := Forward(context.Background(), dc, proxyOut); done <- forwarded{st, err} }()
	appC.Write([]byte("rest"))
	appC.CloseWrite()
	got, _ := io.ReadAll(backend)
	if string(got) != "\x00peeked-rest" {
		t.Fatalf("backend got %q", got)
	}
	backend.Close()
	if f := wait(t, done); f.st.FromClient != int64(len(got)) {
		t.Errorf("FromClient = %d, want %d", f.st.FromClient, len(got))
	}
}

func TestForwardResetPropagates(t *testing.T) {
	app, backend, done := through(t, context.Background(), nil, nil)
	app.Write([]byte("x"))
	io.ReadFull(backend, make([]byte, 1))
	backend.(*net.TCPConn).SetLinger(0)
	backend.Close() // RST
	app.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := app.Read(make([]byte, 1))
	if err == nil {
		t.Fatal("app read succeeded after the backend reset")
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("app saw nothing after the backend reset")
	}
	if f := wait(t, done); f.err == nil {
		t.Error("Forward reported no error for a reset")
	}
}

// TestForwardResetThroughRawio checks that a reset reaches a peer whose
// proxy-side socket is wrapped for raw I/O (the application's side of an
// opaque mTLS stream): abort must reset the wrapped socket, not close it in
// order.
func TestForwardResetThroughRawio(t *testing.T) {
	app, backend, done := through(t, context.Background(), nil, rawio.Wrap)
	if _, ok := backendSide(t, rawio.Wrap).(*net.TCPConn); ok {
		t.Fatal("rawio.Wrap returned the bare *net.TCPConn: the test would not cover the wrapper")
	}
	app.Write([]byte("x"))
	io.ReadFull(backend, make([]byte, 1))
	app.(*net.TCPConn).SetLinger(0)
	app.Close() // RST
	backend.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err := backend.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("backend read: %v, want a reset (ECONNRESET)", err)
	}
	if f := wait(t, done); f.err == nil {
		t.Error("Forward reported no error for a reset")
	}
}

// backendSide returns what wrap makes of a fresh loopback socket.
func backendSide(t *testing.T, wrap func(net.Conn) net.Conn) net.Conn {
	a, _ := pair(t)
	return wrap(a)
}

func TestForwardContextClosesBoth(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	app, backend, done := through(t, ctx, nil, nil)
	app.Write([]byte("idle"))
	io.ReadFull(backend, make([]byte, 4))
	cancel()
	f := wait(t, done)
	if !errors.Is(f.err, context.Canceled) {
		t.Errorf("Forward = %v, want context.Canceled", f.err)
	}
	for name, c := range map[string]net.Conn{"app": app, "backend": backend} {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil || isTimeout(err) {
			t.Errorf("%s still open after the hard stop: %v", name, err)
		}
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// TestForwardLarge sends random data both ways at once over plain TCP
// (splice) and over a TLS hop (pooled buffers) and checks every byte.
func TestForwardLarge(t *testing.T) {
	ca := meshtlstest.NewCA(t, "meshlet.local")
	const id = "spiffe://meshlet.local/ns/default/sa/web"
	srv := ca.Source(t, id)
	cli := ca.Source(t, "spiffe://meshlet.local/ns/default/sa/app")
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"splice", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			var wrapServer func(net.Conn) net.Conn
			if tc.tls {
				wrapServer = func(c net.Conn) net.Conn {
					return tls.Client(c, meshtls.ClientConfig(cli, spiffeid.RequireFromString(id), meshtls.ALPNOpaque))
				}
			}
			app, backendRaw, done := through(t, context.Background(), nil, wrapServer)
			backend := backendRaw
			if tc.tls {
				backend = tls.Server(backendRaw, meshtls.ServerConfig(srv, meshtls.ALPNOpaque))
			}
			const size = 4 << 20
			up := make([]byte, size)
			down := make([]byte, size)
			rng := rand.New(rand.NewPCG(1, 2))
			for i := range up {
				up[i], down[i] = byte(rng.Uint32()), byte(rng.Uint32())
			}
			type res struct {
				sum [32]byte
				err error
			}
			readAll := func(c net.Conn, ch chan<- res) {
				b, err := io.ReadAll(c)
				ch <- res{sha256.Sum256(b), err}
			}
			atBackend, atApp := make(chan res, 1), make(chan res, 1)
			go readAll(backend, atBackend)
			go readAll(app, atApp)
			go func() {
				backend.Write(down)
				backend.(interface{ CloseWrite() error }).CloseWrite()
			}()
			app.Write(up)
			app.(*net.TCPConn).CloseWrite()
			if r := <-atBackend; r.err != nil || r.sum != sha256.Sum256(up) {
				t.Fatalf("upstream data corrupted: %v", r.err)
			}
			if r := <-atApp; r.err != nil || r.sum != sha256.Sum256(down) {
				t.Fatalf("downstream data corrupted: %v", r.err)
			}
			backend.Close()
			f := wait(t, done)
			if f.err != nil || f.st.FromClient != size || f.st.ToClient != size {
				t.Fatalf("Forward = %+v", f)
			}
		})
	}
}

// BenchmarkForward measures one-way throughput through Forward on loopback.
func BenchmarkForward(b *testing.B) {
	for _, name := range []string{"splice", "tls"} {
		b.Run(name, func(b *testing.B) {
			var wrapServer func(net.Conn) net.Conn
			var srv *meshtlstest.Source
			if name == "tls" {
				ca := meshtlstest.NewCA(b, "meshlet.local")
				const id = "spiffe://meshlet.local/ns/default/sa/web"
				srv = ca.Source(b, id)
				cli := ca.Source(b, "spiffe://meshlet.local/ns/default/sa/app")
				wrapServer = func(c net.Conn) net.Conn {
					return tls.Client(c, meshtls.ClientConfig(cli, spiffeid.RequireFromString(id), meshtls.ALPNOpaque))
				}
			}
			app, backendRaw, done := through(b, context.Background(), nil, wrapServer)
			backend := backendRaw
			if srv != nil {
				backend = tls.Server(backendRaw, meshtls.ServerConfig(srv, meshtls.ALPNOpaque))
			}
			chunk := make([]byte, 64<<10)
			sink := make(chan int64, 1)
			go func() { n, _ := io.Copy(io.Discard, backend); sink <- n }()
			b.SetBytes(int64(len(chunk)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := app.Write(chunk); err != nil {
					b.Fatal(err)
				}
			}
			app.(*net.TCPConn).CloseWrite()
			<-sink
			backend.Close()
			wait(b, done)
		})
	}
}
