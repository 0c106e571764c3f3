//lint:file-ignore SA1019 the counterparts in these tests are x/net's own HTTP/2 server and client, deprecated in favour of net/http's but still the reference implementation that ServeConn and ClientConn are checked against.

package h2_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"math/rand"
	"net"
	"net/http"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"github.com/meshlet/meshlet/proxy/h2"
)

// checkGoroutines fails the test if, once the test's other cleanups ran,
// more goroutines are left than when it started. Call it first in a test so
// its cleanup runs last.
func checkGoroutines(t *testing.T) {
	t.Helper()
	base := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for {
			n := runtime.NumGoroutine()
			if n <= base {
				return
			}
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<20)
				buf = buf[:runtime.Stack(buf, true)]
				t.Errorf("goroutines: %d at start, %d after the test\n%s", base, n, buf)
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	})
}

// errCounter records the labels passed to Server.CountError.
type errCounter struct {
	mu     sync.Mutex
	labels []string
}

func (e *errCounter) add(label string) {
	e.mu.Lock()
	e.labels = append(e.labels, label)
	e.mu.Unlock()
}

func (e *errCounter) list() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.labels)
}

// waitCounted waits briefly for at least one CountError call: it may be
// made just after the frame that reports the error was written.
func (e *errCounter) waitCounted(t testing.TB) {
	t.Helper()
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if l := e.list(); len(l) > 0 {
			for _, s := range l {
				if s == "" {
					t.Errorf("CountError called with an empty label: %q", l)
				}
			}
			return
		}
	}
	t.Errorf("CountError was not called")
}

// testServer is an h2.Server serving every connection accepted on a
// loopback listener with `go srv.ServeConn(ctx, conn)`.
type testServer struct {
	srv      *h2.Server
	addr     string
	ln       net.Listener
	cancel   context.CancelFunc
	errs     *errCounter
	accepted atomic.Int32
	serving  sync.WaitGroup

	mu    sync.Mutex
	conns []net.Conn
}

func startServer(t testing.TB, h http.Handler, mutate func(*h2.Server)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ts := &testServer{ln: ln, addr: ln.Addr().String(), errs: &errCounter{}}
	ts.srv = &h2.Server{Handler: h, CountError: ts.errs.add}
	if mutate != nil {
		mutate(ts.srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ts.cancel = cancel
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ts.accepted.Add(1)
			ts.mu.Lock()
			ts.conns = append(ts.conns, c)
			ts.mu.Unlock()
			ts.serving.Add(1)
			go func() {
				defer ts.serving.Done()
				ts.srv.ServeConn(ctx, c)
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-acceptDone
		cancel() // graceful: GOAWAY, open streams finish, conns close
		if !waitGroupTimeout(&ts.serving, 10*time.Second) {
			t.Errorf("ServeConn did not return within 10s of its context ending")
			ts.mu.Lock()
			for _, c := range ts.conns {
				c.Close()
			}
			ts.mu.Unlock()
			if !waitGroupTimeout(&ts.serving, 10*time.Second) {
				t.Errorf("ServeConn did not return after its conn was closed")
			}
		}
	})
	return ts
}

func (ts *testServer) url(path string) string { return "http://" + ts.addr + path }

func waitGroupTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(d):
		return false
	}
}

// xnetClient is an http.Client on x/net's HTTP/2 transport, speaking h2c
// with prior knowledge.
func xnetClient(t testing.TB) (*http.Client, *http2.Transport) {
	tr := &http2.Transport{
		AllowHTTP: true,
		DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, network, addr)
		},
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, tr
}

// xnetServer is x/net's http2.Server serving loopback connections, behind
// an http.Server (never serving itself) so Shutdown sends GOAWAY.
type xnetServer struct {
	addr string
	hs   *http.Server
	h2s  *http2.Server

	mu    sync.Mutex
	conns []net.Conn
}

func startXnetServer(t testing.TB, h http.Handler) *xnetServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	xs := &xnetServer{addr: ln.Addr().String(), hs: &http.Server{Handler: h}, h2s: &http2.Server{}}
	if err := http2.ConfigureServer(xs.hs, xs.h2s); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			xs.mu.Lock()
			xs.conns = append(xs.conns, c)
			xs.mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				xs.h2s.ServeConn(c, &http2.ServeConnOpts{Handler: h, BaseConfig: xs.hs})
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		xs.mu.Lock()
		for _, c := range xs.conns {
			c.Close()
		}
		xs.mu.Unlock()
		if !waitGroupTimeout(&wg, 10*time.Second) {
			t.Errorf("x/net server did not stop")
		}
	})
	return xs
}

// dialClient starts an h2.ClientConn to addr, closed at the end of the test.
func dialClient(t testing.TB, addr string, cfg h2.ClientConfig) *h2.ClientConn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cc, err := h2.NewClientConn(c, cfg)
	if err != nil {
		c.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

// payload is n deterministic pseudo-random bytes read in odd-sized pieces;
// Sum is the SHA-256 of what was read so far.
type payload struct {
	rnd  *rand.Rand // content
	cut  *rand.Rand // read sizes, apart so content does not depend on them
	left int64
	read atomic.Int64
	h    hashWriter
}

func newPayload(seed, n int64) *payload {
	return &payload{rnd: rand.New(rand.NewSource(seed)), cut: rand.New(rand.NewSource(-seed)), left: n, h: hashWriter{sha: sha256.New()}}
}

func (p *payload) Read(b []byte) (int, error) {
	if p.left == 0 {
		return 0, io.EOF
	}
	if int64(len(b)) > p.left {
		b = b[:p.left]
	}
	if len(b) > 3000 && p.cut.Intn(2) == 0 {
		b = b[:len(b)-1-p.cut.Intn(2000)]
	}
	n, _ := p.rnd.Read(b)
	p.left -= int64(n)
	p.read.Add(int64(n))
	p.h.Write(b[:n])
	return n, nil
}

// wantSum is the hash of newPayload(seed, n)'s bytes, computed apart from
// the copy a test sends (whose hash state other goroutines touched).
func wantSum(seed, n int64) string {
	s, _ := hashOf(struct{ io.Reader }{newPayload(seed, n)})
	return s
}

type hashWriter struct {
	sha interface {
		io.Writer
		Sum([]byte) []byte
	}
	n int64
}

func (h *hashWriter) Write(b []byte) (int, error) {
	h.n += int64(len(b))
	return h.sha.Write(b)
}

func (h *hashWriter) sum() string { return fmt.Sprintf("%x/%d", h.sha.Sum(nil), h.n) }

// hashOf reads r to EOF and returns its SHA-256 and length.
func hashOf(r io.Reader) (string, error) {
	h := hashWriter{sha: sha256.New()}
	_, err := io.Copy(&h, r)
	return h.sum(), err
}

// mustRead reads the body fully and closes it.
func mustRead(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading body: %v", err)
	}
	return string(b)
}

// within fails the test unless ch is closed or receives within d.
func within[T any](t testing.TB, ch <-chan T, d time.Duration, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(d):
		t.Fatalf("timed out after %v waiting for %s", d, what)
		var zero T
		return zero
	}
}

type serverT = h2.Server
