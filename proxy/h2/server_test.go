package h2_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// seenRequest is what a handler saw of its request.
type seenRequest struct {
	Method, Host, Path, RawQuery, Proto, RemoteAddr string
	ProtoMajor, ProtoMinor                          int
	ContentLength                                   int64
	Header                                          http.Header
	Body                                            string
}

func recordingHandler(seen chan<- seenRequest) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen <- seenRequest{r.Method, r.Host, r.URL.Path, r.URL.RawQuery, r.Proto, r.RemoteAddr,
			r.ProtoMajor, r.ProtoMinor, r.ContentLength, r.Header.Clone(), string(b)}
		w.Header().Add("X-Multi", "a")
		w.Header().Add("X-Multi", "b")
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "hello "+r.Method)
	}
}

func TestServerGet(t *testing.T) {
	checkGoroutines(t)
	seen := make(chan seenRequest, 1)
	ts := startServer(t, recordingHandler(seen), nil)
	client, _ := xnetClient(t)

	req, _ := http.NewRequest("GET", ts.url("/a/b?x=1&y=%20z"), nil)
	req.Host = "example.test:8080"
	req.Header.Add("X-Req", "one")
	req.Header.Add("X-Req", "two")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "hello GET" {
		t.Errorf("body %q", body)
	}
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Errorf("status %d proto %s", resp.StatusCode, resp.Proto)
	}
	if got := resp.Header["X-Multi"]; !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("X-Multi %q, want [a b]", got)
	}
	if got := resp.Header.Get("Content-Type"); got != "text/plain" {
		t.Errorf("Content-Type %q", got)
	}
	r := <-seen
	if r.Method != "GET" || r.Host != "example.test:8080" || r.Path != "/a/b" || r.RawQuery != "x=1&y=%20z" {
		t.Errorf("request %+v", r)
	}
	if r.Proto != "HTTP/2.0" || r.ProtoMajor != 2 || r.ProtoMinor != 0 {
		t.Errorf("proto %q %d.%d", r.Proto, r.ProtoMajor, r.ProtoMinor)
	}
	if r.ContentLength != 0 {
		t.Errorf("ContentLength %d for a request ending with HEADERS, want 0", r.ContentLength)
	}
	if got := r.Header["X-Req"]; !slices.Equal(got, []string{"one", "two"}) {
		t.Errorf("X-Req %q", got)
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err != nil || host != "127.0.0.1" {
		t.Errorf("RemoteAddr %q", r.RemoteAddr)
	}
}

func TestServerContentLength(t *testing.T) {
	seen := make(chan seenRequest, 1)
	ts := startServer(t, recordingHandler(seen), nil)
	client, _ := xnetClient(t)

	// Known length: x/net sends content-length.
	resp, err := client.Post(ts.url("/"), "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	mustRead(t, resp)
	if r := <-seen; r.ContentLength != 5 || r.Body != "hello" || r.Method != "POST" {
		t.Errorf("known length: ContentLength %d body %q", r.ContentLength, r.Body)
	}

	// Unknown length: a streamed body without content-length.
	pr, pw := io.Pipe()
	go func() { io.WriteString(pw, "streamed"); pw.Close() }()
	resp, err = client.Post(ts.url("/"), "text/plain", pr)
	if err != nil {
		t.Fatal(err)
	}
	mustRead(t, resp)
	if r := <-seen; r.ContentLength != -1 || r.Body != "streamed" {
		t.Errorf("unknown length: ContentLength %d body %q", r.ContentLength, r.Body)
	}
}

func TestServerResponseContentLength(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/exact":
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		case "/head":
			w.Header().Set("Content-Length", "100")
		case "/short":
			// Declares 10, sends 3: the client must not see a clean end.
			w.Header().Set("Content-Length", "10")
			io.WriteString(w, "abc")
		}
	}), nil)
	client, _ := xnetClient(t)

	resp, err := client.Get(ts.url("/exact"))
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "hello" || resp.ContentLength != 5 {
		t.Errorf("exact: body %q ContentLength %d", body, resp.ContentLength)
	}

	resp, err = client.Head(ts.url("/head"))
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "" || resp.ContentLength != 100 {
		t.Errorf("HEAD: body %q ContentLength %d, want empty and 100", body, resp.ContentLength)
	}

	resp, err = client.Get(ts.url("/short"))
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("short body: read %q with no error, want an error (RFC 9113 §8.1.1)", b)
		}
	}
}

func TestServerEchoLarge(t *testing.T) {
	checkGoroutines(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}), nil)
	client, _ := xnetClient(t)

	const size = 8 << 20
	src := newPayload(1, size)
	pr, pw := io.Pipe()
	go func() { _, err := io.Copy(pw, src); pw.CloseWithError(err) }()
	resp, err := client.Post(ts.url("/echo"), "application/octet-stream", pr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := hashOf(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if want := wantSum(1, size); got != want {
		t.Errorf("echoed %s, sent %s", got, want)
	}
}

func TestServerTrailers(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("handler read: %v", err)
		}
		w.Header().Set("Trailer", "X-Declared")
		w.Header().Set("X-Got-Body", string(body))
		w.Header().Set("X-Got-Trailer", r.Trailer.Get("X-Req-Trailer"))
		w.WriteHeader(200)
		io.WriteString(w, "body")
		w.(http.Flusher).Flush()
		w.Header().Set("X-Declared", "d1")
		w.Header().Set(http.TrailerPrefix+"X-Undeclared", "u1")
	}), nil)
	client, _ := xnetClient(t)

	req, _ := http.NewRequest("POST", ts.url("/t"), strings.NewReader("payload"))
	req.Trailer = http.Header{"X-Req-Trailer": {"rt"}}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := mustRead(t, resp); body != "body" {
		t.Errorf("body %q", body)
	}
	if got := resp.Header.Get("X-Got-Body"); got != "payload" {
		t.Errorf("handler read body %q", got)
	}
	if got := resp.Header.Get("X-Got-Trailer"); got != "rt" {
		t.Errorf("handler saw request trailer %q, want rt", got)
	}
	if got := resp.Trailer.Get("X-Declared"); got != "d1" {
		t.Errorf("declared trailer %q, want d1 (trailers %v)", got, resp.Trailer)
	}
	if got := resp.Trailer.Get("X-Undeclared"); got != "u1" {
		t.Errorf("TrailerPrefix trailer %q, want u1 (trailers %v)", got, resp.Trailer)
	}
}

// TestServerFlush: each chunk must reach the client before the handler
// writes the next one, which waits for the client to have read it.
func TestServerFlush(t *testing.T) {
	const chunks = 5
	ack := make(chan int)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for i := range chunks {
			fmt.Fprintf(w, "chunk %d\n", i)
			w.(http.Flusher).Flush()
			select {
			case got := <-ack:
				if got != i {
					t.Errorf("ack %d for chunk %d", got, i)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("chunk %d was not read by the client: Flush did not send it", i)
				return
			case <-r.Context().Done():
				return
			}
		}
	}), nil)
	client, _ := xnetClient(t)
	resp, err := client.Get(ts.url("/stream"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	for i := range chunks {
		line, err := br.ReadString('\n')
		if err != nil || line != fmt.Sprintf("chunk %d\n", i) {
			t.Fatalf("line %d: %q %v", i, line, err)
		}
		ack <- i
	}
	if rest, err := io.ReadAll(br); err != nil || len(rest) != 0 {
		t.Errorf("after chunks: %q %v", rest, err)
	}
}

// TestServerConcurrentStreams holds 100 handlers open at once on one
// connection: all must be running together before any returns.
func TestServerConcurrentStreams(t *testing.T) {
	checkGoroutines(t)
	const n = 100
	var arrived sync.WaitGroup
	arrived.Add(n)
	all := make(chan struct{})
	go func() { arrived.Wait(); close(all) }()
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived.Done()
		select {
		case <-all:
		case <-time.After(10 * time.Second):
			t.Errorf("not all %d streams were served concurrently", n)
		}
		io.WriteString(w, r.URL.Query().Get("i"))
	}), nil)
	client, _ := xnetClient(t)

	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := client.Get(ts.url("/c?i=" + strconv.Itoa(i)))
			if err != nil {
				t.Errorf("request %d: %v", i, err)
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil || string(b) != strconv.Itoa(i) {
				t.Errorf("request %d: body %q err %v", i, b, err)
			}
		}()
	}
	wg.Wait()
	if got := ts.accepted.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// TestServerManyRequests runs requests one after another on a connection
// (stream IDs climb, stream state is released).
func TestServerManyRequests(t *testing.T) {
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(w, r.Body)
	}), nil)
	client, _ := xnetClient(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 500 {
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.url("/"), strings.NewReader(strconv.Itoa(i)))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if got := mustRead(t, resp); got != strconv.Itoa(i) {
			t.Fatalf("request %d: %q", i, got)
		}
	}
	if got := ts.accepted.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}
