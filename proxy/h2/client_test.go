package h2_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/h2"
)

// Tests of h2.ClientConn against x/net's http2.Server.

func newReq(t testing.TB, ctx context.Context, method, url string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

func TestClientGetPost(t *testing.T) {
	checkGoroutines(t)
	type seen struct {
		method, host, path, query, body string
		contentLength                   int64
		hdr                             []string
	}
	got := make(chan seen, 1)
	xs := startXnetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.Host, r.URL.Path, r.URL.RawQuery, string(b), r.ContentLength, r.Header["X-Req"]}
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.WriteHeader(201)
		io.WriteString(w, "reply:"+string(b))
	}))
	cc := dialClient(t, xs.addr, h2.ClientConfig{})
	ctx := context.Background()

	req := newReq(t, ctx, "GET", "http://"+xs.addr+"/p/q?a=b", nil)
	req.Header.Add("X-Req", "1")
	req.Header.Add("X-Req", "2")
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "reply:" || resp.StatusCode != 201 {
		t.Errorf("GET: %d %q", resp.StatusCode, body)
	}
	if h := resp.Header["X-Multi"]; !slices.Equal(h, []string{"a", "b"}) {
		t.Errorf("X-Multi %q", h)
	}
	s := <-got
	if s.method != "GET" || s.host != xs.addr || s.path != "/p/q" || s.query != "a=b" || s.contentLength != 0 || !slices.Equal(s.hdr, []string{"1", "2"}) {
		t.Errorf("server saw %+v", s)
	}

	req = newReq(t, ctx, "POST", "http://"+xs.addr+"/post", strings.NewReader("hello"))
	req.Host = "virtual.test"
	resp, err = cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "reply:hello" {
		t.Errorf("POST: %q", body)
	}
	if s := <-got; s.method != "POST" || s.host != "virtual.test" || s.body != "hello" || s.contentLength != 5 {
		t.Errorf("server saw %+v", s)
	}
}

func TestClientLargeBodies(t *testing.T) {
	checkGoroutines(t)
	const size = 8 << 20
	xs := startXnetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			io.Copy(w, newPayload(7, size))
			return
		}
		io.Copy(w, r.Body)
	}))
	cc := dialClient(t, xs.addr, h2.ClientConfig{})

	// Download.
	resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/dl", nil))
	if err != nil {
		t.Fatal(err)
	}
	got, err := hashOf(resp.Body)
	resp.Body.Close()
	if want := wantSum(7, size); err != nil || got != want {
		t.Errorf("download: %s %v, want %s", got, err, want)
	}

	// Upload echoed back, streaming both ways.
	src := newPayload(8, size)
	pr, pw := io.Pipe()
	go func() { _, err := io.Copy(pw, src); pw.CloseWithError(err) }()
	resp, err = cc.RoundTrip(newReq(t, context.Background(), "POST", "http://"+xs.addr+"/echo", pr))
	if err != nil {
		t.Fatal(err)
	}
	got, err = hashOf(resp.Body)
	resp.Body.Close()
	if want := wantSum(8, size); err != nil || got != want {
		t.Errorf("echo: %s %v, want %s", got, err, want)
	}
}

func TestClientTrailers(t *testing.T) {
	xs := startXnetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadAll(r.Body)
		w.Header().Set("Trailer", "X-Declared")
		w.WriteHeader(200)
		io.WriteString(w, "body")
		w.Header().Set("X-Declared", "got "+r.Trailer.Get("X-Req-Trailer"))
		w.Header().Set(http.TrailerPrefix+"X-Undeclared", "u")
	}))
	cc := dialClient(t, xs.addr, h2.ClientConfig{})
	req := newReq(t, context.Background(), "POST", "http://"+xs.addr+"/t", strings.NewReader("payload"))
	req.Trailer = http.Header{"X-Req-Trailer": {"rt"}}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "body" {
		t.Errorf("body %q", body)
	}
	if got := resp.Trailer.Get("X-Declared"); got != "got rt" {
		t.Errorf("X-Declared trailer %q, want %q (trailers %v)", got, "got rt", resp.Trailer)
	}
	if got := resp.Trailer.Get("X-Undeclared"); got != "u" {
		t.Errorf("X-Undeclared trailer %q (trailers %v)", got, resp.Trailer)
	}
}

func TestClientConcurrent(t *testing.T) {
	checkGoroutines(t)
	xs := startXnetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}))
	cc := dialClient(t, xs.addr, h2.ClientConfig{})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				msg := strconv.Itoa(i*100 + j)
				resp, err := cc.RoundTrip(newReq(t, context.Background(), "POST", "http://"+xs.addr+"/", strings.NewReader(msg)))
				if err != nil {
					t.Errorf("%s: %v", msg, err)
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil || string(b) != msg {
					t.Errorf("%s: got %q %v", msg, b, err)
				}
			}
		}()
	}
	wg.Wait()
}

// TestClientCancel: ending the request context resets the stream; the
// server's handler sees its context end. Closing the body early does too.
func TestClientCancel(t *testing.T) {
	checkGoroutines(t)
	started := make(chan struct{}, 1)
	handlerDone := make(chan error, 1)
	xs := startXnetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		started <- struct{}{}
		if r.URL.Path == "/flood" {
			// Keeps writing until the client's reset stops it.
			buf := make([]byte, 16<<10)
			for i := 0; i < 10000; i++ {
				if _, err := w.Write(buf); err != nil {
					break
				}
			}
		}
		select {
		case <-r.Context().Done():
			handlerDone <- r.Context().Err()
		case <-time.After(10 * time.Second):
			handlerDone <- errors.New("handler context not done")
		}
	}))
	cc := dialClient(t, xs.addr, h2.ClientConfig{})

	ctx, cancel := context.WithCancel(context.Background())
	resp, err := cc.RoundTrip(newReq(t, ctx, "GET", "http://"+xs.addr+"/wait", nil))
	if err != nil {
		t.Fatal(err)
	}
	within(t, started, 5*time.Second, "handler start")
	cancel()
	if err := within(t, handlerDone, 15*time.Second, "handler (ctx cancel)"); !errors.Is(err, context.Canceled) {
		t.Errorf("after ctx cancel the handler saw %v", err)
	}
	if _, err := io.ReadAll(resp.Body); err == nil {
		t.Errorf("body read after ctx cancel: no error")
	}
	resp.Body.Close()

	resp, err = cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/flood", nil))
	if err != nil {
		t.Fatal(err)
	}
	within(t, started, 5*time.Second, "handler start")
	io.ReadFull(resp.Body, make([]byte, 100))
	resp.Body.Close()
	if err := within(t, handlerDone, 15*time.Second, "handler (body close)"); !errors.Is(err, context.Canceled) {
		t.Errorf("after Body.Close the handler saw %v", err)
	}

	// The connection still works.
	resp, err = cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/wait", nil))
	if err != nil {
		t.Fatalf("request after resets: %v", err)
	}
	within(t, started, 5*time.Second, "handler start")
	resp.Body.Close()
	within(t, handlerDone, 15*time.Second, "handler")
}

// TestClientServerGoAway: after x/net's server shuts down gracefully, the
// connection stops taking requests: OnGone once, Reserve false, Idle not
// ok, and a RoundTrip fails with ErrRefused. The request in flight finishes.
func TestClientServerGoAway(t *testing.T) {
	checkGoroutines(t)
	started := make(chan struct{})
	release := make(chan struct{})
	xs := startXnetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	var gone atomic.Int32
	goneCh := make(chan struct{}, 4)
	cc := dialClient(t, xs.addr, h2.ClientConfig{OnGone: func(*h2.ClientConn) {
		gone.Add(1)
		goneCh <- struct{}{}
	}})

	if d, ok := cc.Idle(); !ok || d < 0 {
		t.Errorf("fresh conn: Idle() = %v, %v; want >= 0, true", d, ok)
	}
	resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/first", nil))
	if err != nil {
		t.Fatal(err)
	}
	mustRead(t, resp)
	time.Sleep(20 * time.Millisecond)
	if d, ok := cc.Idle(); !ok || d < 20*time.Millisecond {
		t.Errorf("idle conn: Idle() = %v, %v; want >= 20ms, true", d, ok)
	}

	slowDone := make(chan string, 1)
	go func() {
		resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/slow", nil))
		if err != nil {
			slowDone <- "error: " + err.Error()
			return
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			slowDone <- "read error: " + err.Error()
			return
		}
		slowDone <- string(b)
	}()
	within(t, started, 5*time.Second, "slow handler")
	if d, ok := cc.Idle(); d != 0 || !ok {
		t.Errorf("busy conn: Idle() = %v, %v; want 0, true", d, ok)
	}

	shutdownDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdownDone <- xs.hs.Shutdown(ctx)
	}()
	within(t, goneCh, 5*time.Second, "OnGone after GOAWAY")
	if cc.Reserve() {
		t.Errorf("Reserve() = true after GOAWAY")
	}
	if _, ok := cc.Idle(); ok {
		t.Errorf("Idle() ok after GOAWAY")
	}
	_, err = cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/after", nil))
	if !errors.Is(err, h2.ErrRefused) {
		t.Errorf("RoundTrip after GOAWAY: %v, want ErrRefused", err)
	}
	close(release)
	if got := within(t, slowDone, 5*time.Second, "in-flight request"); got != "done /slow" {
		t.Errorf("in-flight request after GOAWAY: %q", got)
	}
	<-shutdownDone
	cc.Close()
	time.Sleep(50 * time.Millisecond)
	if n := gone.Load(); n != 1 {
		t.Errorf("OnGone called %d times, want 1", n)
	}
}

// TestClientClose: Close fails streams in flight and later RoundTrips.
func TestClientClose(t *testing.T) {
	checkGoroutines(t)
	started := make(chan struct{})
	xs := startXnetServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		close(started)
		<-r.Context().Done()
	}))
	var gone atomic.Int32
	cc := dialClient(t, xs.addr, h2.ClientConfig{OnGone: func(*h2.ClientConn) { gone.Add(1) }})
	resp, err := cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/", nil))
	if err != nil {
		t.Fatal(err)
	}
	<-started
	readErr := make(chan error, 1)
	go func() { _, err := io.ReadAll(resp.Body); readErr <- err }()
	cc.Close()
	if err := within(t, readErr, 5*time.Second, "body read after Close"); err == nil {
		t.Errorf("body read after Close: no error")
	}
	resp.Body.Close()
	_, err = cc.RoundTrip(newReq(t, context.Background(), "GET", "http://"+xs.addr+"/", nil))
	if !errors.Is(err, h2.ErrRefused) {
		t.Errorf("RoundTrip after Close: %v, want ErrRefused (never sent)", err)
	}
	if cc.Reserve() {
		t.Errorf("Reserve() after Close = true")
	}
	if _, ok := cc.Idle(); ok {
		t.Errorf("Idle() ok after Close")
	}
	time.Sleep(20 * time.Millisecond)
	if n := gone.Load(); n != 1 {
		t.Errorf("OnGone called %d times, want 1", n)
	}
}
