package h2_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/h2"
)

// Tests with both sides ours: h2.ClientConn to h2.Server.

func TestPairBasics(t *testing.T) {
	checkGoroutines(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("handler read: %v", err)
		}
		w.Header().Set("Trailer", "X-Sum")
		w.Header().Set("X-Host", r.Host)
		w.Header().Set("X-CL", r.Method+" "+strconv.FormatInt(r.ContentLength, 10))
		w.WriteHeader(202)
		w.Write(b)
		w.Header().Set("X-Sum", "len="+strconv.Itoa(len(b))+" t="+r.Trailer.Get("X-In"))
	}), nil)
	cc := dialClient(t, ts.addr, h2.ClientConfig{})

	resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", ts.url("/g"), nil))
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "" || resp.StatusCode != 202 || resp.Header.Get("X-CL") != "GET 0" || resp.Header.Get("X-Host") != ts.addr {
		t.Errorf("GET: %d %q %v", resp.StatusCode, body, resp.Header)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "len=0 t=" {
		t.Errorf("GET trailer %q", got)
	}

	req := newReq(t, context.Background(), "POST", ts.url("/p"), strings.NewReader("hello"))
	req.Trailer = http.Header{"X-In": {"tin"}}
	resp, err = cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "hello" || resp.Header.Get("X-CL") != "POST 5" {
		t.Errorf("POST: %q %v", body, resp.Header)
	}
	if got := resp.Trailer.Get("X-Sum"); got != "len=5 t=tin" {
		t.Errorf("POST trailer %q, want %q", got, "len=5 t=tin")
	}
}

func TestPairConcurrentLarge(t *testing.T) {
	checkGoroutines(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}), nil)
	cc := dialClient(t, ts.addr, h2.ClientConfig{})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := newPayload(int64(100+i), 2<<20)
			pr, pw := io.Pipe()
			go func() { _, err := io.Copy(pw, src); pw.CloseWithError(err) }()
			resp, err := cc.RoundTrip(newReq(t, context.Background(), "POST", ts.url("/echo"), pr))
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				pr.Close()
				return
			}
			got, err := hashOf(resp.Body)
			resp.Body.Close()
			if want := wantSum(int64(100+i), 2<<20); err != nil || got != want {
				t.Errorf("stream %d: echoed %s %v, sent %s", i, got, err, want)
			}
		}()
	}
	wg.Wait()
}

// TestPairSlowReader: the handler reads a large body slowly through small
// windows; the client must read its request body no further ahead of the
// handler than the windows allow (plus some buffering), and finish intact.
func TestPairSlowReader(t *testing.T) {
	checkGoroutines(t)
	const (
		size   = 8 << 20
		window = 64 << 10
		slack  = 2 << 20 // generous: any bounded buffering passes
	)
	src := newPayload(3, size)
	var maxAhead atomic.Int64
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := hashWriter{sha: sha256.New()}
		buf := make([]byte, 8<<10)
		var read int64
		for i := 0; ; i++ {
			n, err := r.Body.Read(buf)
			h.Write(buf[:n])
			read += int64(n)
			if ahead := src.read.Load() - read; ahead > maxAhead.Load() {
				maxAhead.Store(ahead)
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Errorf("handler read: %v", err)
				return
			}
			if i%64 == 0 {
				time.Sleep(time.Millisecond)
			}
		}
		io.WriteString(w, h.sum())
	}), func(s *h2.Server) {
		s.StreamWindow, s.ConnWindow = window, 2*window
	})
	cc := dialClient(t, ts.addr, h2.ClientConfig{})
	resp, err := cc.RoundTrip(newReq(t, context.Background(), "POST", ts.url("/slow"), struct{ io.Reader }{src}))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := mustRead(t, resp), wantSum(3, size); got != want {
		t.Errorf("handler read %s, client sent %s", got, want)
	}
	if m := maxAhead.Load(); m > window+slack {
		t.Errorf("client read its body up to %d bytes ahead of the handler (window %d): unbounded buffering", m, window)
	}
}

// closeRecorder notes when the server closed its side of the connection.
type closeRecorder struct {
	net.Conn
	once   sync.Once
	closed chan struct{}
}

func (c *closeRecorder) Close() error {
	c.once.Do(func() { close(c.closed) })
	return c.Conn.Close()
}

// TestPairGracefulShutdown: ending ServeConn's context while a request is
// in flight lets it finish, refuses new streams, then returns with the
// connection closed.
func TestPairGracefulShutdown(t *testing.T) {
	checkGoroutines(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	started := make(chan struct{})
	release := make(chan struct{})
	srv := &h2.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			w.WriteHeader(200)
			io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			close(started)
			<-release
			io.WriteString(w, "part2")
			return
		}
		io.WriteString(w, "fast")
	})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	serveDone := make(chan struct{})
	var sc *closeRecorder
	go func() {
		defer close(serveDone)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		sc = &closeRecorder{Conn: c, closed: make(chan struct{})}
		srv.ServeConn(ctx, sc)
	}()

	goneCh := make(chan struct{}, 4)
	var gone atomic.Int32
	cc := dialClient(t, ln.Addr().String(), h2.ClientConfig{OnGone: func(*h2.ClientConn) {
		gone.Add(1)
		goneCh <- struct{}{}
	}})
	url := "http://" + ln.Addr().String()
	resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", url+"/slow", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	within(t, started, 5*time.Second, "slow handler")

	cancel()
	within(t, goneCh, 5*time.Second, "OnGone after the server's GOAWAY")
	_, err = cc.RoundTrip(newReq(t, context.Background(), "GET", url+"/new", nil))
	if !errors.Is(err, h2.ErrRefused) {
		t.Errorf("new request during shutdown: %v, want ErrRefused", err)
	}
	select {
	case <-serveDone:
		t.Fatalf("ServeConn returned with a handler still running")
	default:
	}

	close(release)
	b, err := io.ReadAll(resp.Body)
	if err != nil || string(b) != "part1,part2" {
		t.Errorf("in-flight request: %q %v, want it to complete", b, err)
	}
	within(t, serveDone, 10*time.Second, "ServeConn to return")
	select {
	case <-sc.closed:
	default:
		t.Errorf("ServeConn returned without closing its conn")
	}
	if n := gone.Load(); n != 1 {
		t.Errorf("OnGone called %d times, want 1", n)
	}
}

// TestPairIdleTimeout: a connection with no stream open for IdleTimeout is
// closed by the server (GOAWAY first, so the client sees it gone).
func TestPairIdleTimeout(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), func(s *h2.Server) { s.IdleTimeout = 200 * time.Millisecond })
	goneCh := make(chan struct{}, 1)
	cc := dialClient(t, ts.addr, h2.ClientConfig{OnGone: func(*h2.ClientConn) { goneCh <- struct{}{} }})
	resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", ts.url("/"), nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, resp); got != "ok" {
		t.Errorf("body %q", got)
	}
	within(t, goneCh, 10*time.Second, "the idle connection to be closed")
	if _, ok := cc.Idle(); ok {
		t.Errorf("Idle() ok after the server's idle timeout")
	}
}

// TestPairHealthCheck: with ReadIdleTimeout the client pings a quiet
// server; a live server answers, so a stream opened later still works.
func TestPairHealthCheck(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), nil)
	cc := dialClient(t, ts.addr, h2.ClientConfig{ReadIdleTimeout: 50 * time.Millisecond, PingTimeout: 2 * time.Second})
	time.Sleep(300 * time.Millisecond) // several ping rounds
	resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", ts.url("/"), nil))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, resp); got != "ok" {
		t.Errorf("body %q", got)
	}
}

// TestPairFullDuplexLarge echoes large bodies on several streams at once
// with windows big enough to fill the socket buffers both ways: both
// sides' readers must keep reading while their writers are blocked.
func TestPairFullDuplexLarge(t *testing.T) {
	const streams, size = 4, 16 << 20
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}), func(s *h2.Server) { s.StreamWindow, s.ConnWindow = 16<<20, 64<<20 })
	cc := dialClient(t, ts.addr, h2.ClientConfig{})
	var wg sync.WaitGroup
	for i := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cc.RoundTrip(newReq(t, context.Background(), "POST", ts.url("/echo"), struct{ io.Reader }{newPayload(int64(200+i), size)}))
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			got, err := hashOf(resp.Body)
			resp.Body.Close()
			if want := wantSum(int64(200+i), size); err != nil || got != want {
				t.Errorf("stream %d: echoed %s %v, sent %s", i, got, err, want)
			}
		}()
	}
	if !waitGroupTimeout(&wg, 90*time.Second) {
		t.Errorf("full-duplex echo stuck after 90s (both readers blocked writing?)")
		cc.Close()
		ts.mu.Lock()
		for _, c := range ts.conns {
			c.Close()
		}
		ts.mu.Unlock()
		wg.Wait()
	}
}

// TestPairSmallClientWindow downloads through tiny client windows: the
// server must wait for WINDOW_UPDATEs, never overrun them.
func TestPairSmallClientWindow(t *testing.T) {
	checkGoroutines(t)
	const size = 4 << 20
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, newPayload(9, size))
	}), nil)
	cc := dialClient(t, ts.addr, h2.ClientConfig{StreamWindow: 16 << 10, ConnWindow: 64 << 10})
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", ts.url("/dl"), nil))
			if err != nil {
				t.Errorf("stream %d: %v", i, err)
				return
			}
			got, err := hashOf(resp.Body)
			resp.Body.Close()
			if want := wantSum(9, size); err != nil || got != want {
				t.Errorf("stream %d: got %s %v, want %s", i, got, err, want)
			}
		}()
	}
	wg.Wait()
}
