package httpproxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strconv"
	"strings"
	"testing"
	"time"
)

// feature is one behaviour the proxy must carry, checked over every
// topology it applies to.
type feature struct {
	name   string
	h1Only bool // needs HTTP/1 from the client (hop-by-hop headers, 100-continue, Upgrade)
	run    func(t *testing.T, e *env)
}

var features = []feature{
	{name: "host preserved", run: func(t *testing.T, e *env) {
		res, body := get(t, e.client, e.url("/"))
		if res.StatusCode != 200 || body != "hello" {
			t.Fatalf("got %d %q", res.StatusCode, body)
		}
		if got := res.Header.Get("X-Got-Host"); got != webHost {
			t.Errorf("app saw Host %q, want %q", got, webHost)
		}
		if got, want := res.Header.Get("X-Got-Proto"), e.proto.String(); got != want {
			t.Errorf("app saw %s, want the client's %s", got, want)
		}
		if got := res.Header.Get("X-Got-Hop"); got != "" {
			t.Errorf("app saw hop-by-hop or internal headers: %s", got)
		}
	}},
	{name: "HEAD keeps Content-Length, no body", run: func(t *testing.T, e *env) {
		res, err := e.client.Head(e.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != 200 || res.ContentLength != 5 || len(b) != 0 {
			t.Errorf("HEAD: %d, Content-Length %d, %d body bytes", res.StatusCode, res.ContentLength, len(b))
		}
	}},
	{name: "keep-alive", run: func(t *testing.T, e *env) {
		reused := 0
		e.app.mu.Lock()
		e.app.remotes = nil
		e.app.mu.Unlock()
		for i := 0; i < 4; i++ {
			trace := &httptrace.ClientTrace{GotConn: func(ci httptrace.GotConnInfo) {
				if ci.Reused {
					reused++
				}
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", e.url("/"), nil)
			res, err := e.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
		}
		if reused < 3 {
			t.Errorf("client connection reused %d times of 3", reused)
		}
		e.app.mu.Lock()
		defer e.app.mu.Unlock()
		for _, r := range e.app.remotes[1:] {
			if r != e.app.remotes[0] {
				t.Errorf("app saw requests from %v: upstream connection not kept alive", e.app.remotes)
				break
			}
		}
	}},
	{name: "hop-by-hop stripped", h1Only: true, run: func(t *testing.T, e *env) {
		req, _ := http.NewRequest("GET", e.url("/hopresp"), nil)
		req.Header.Set("Connection", "X-Hop, keep-alive")
		req.Header.Set("X-Hop", "1")
		req.Header.Set("Keep-Alive", "timeout=5")
		req.Header.Set("Proxy-Connection", "keep-alive")
		req.Header.Set("Meshlet-Orig-Proto", "HTTP/1.1") // only proxies may send this
		req.Header.Set("X-End-To-End", "kept")
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if got := res.Header.Get("X-Got-Hop"); got != "" {
			t.Errorf("app saw %s", got)
		}
		for _, k := range []string{"X-Resp-Hop", "Keep-Alive"} {
			if res.Header.Get(k) != "" {
				t.Errorf("client saw response hop-by-hop header %s", k)
			}
		}
	}},
	{name: "chunked bodies both ways", run: func(t *testing.T, e *env) {
		pr, pw := io.Pipe()
		go func() {
			for i := 0; i < 50; i++ {
				fmt.Fprintf(pw, "chunk-%02d;", i)
			}
			pw.Close()
		}()
		req, _ := http.NewRequest("POST", e.url("/echo"), pr) // unknown length: chunked
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != 50*9 || !strings.HasPrefix(string(b), "chunk-00;") || !strings.HasSuffix(string(b), "chunk-49;") {
			t.Errorf("echo: %d bytes %q...", len(b), b[:min(20, len(b))])
		}
	}},
	{name: "response trailers", run: func(t *testing.T, e *env) {
		req, _ := http.NewRequest("GET", e.url("/trailers"), nil)
		req.Header.Set("TE", "trailers")
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if string(b) != "body" {
			t.Errorf("body %q", b)
		}
		if got := res.Trailer.Get("X-Declared"); got != "d" {
			t.Errorf("declared trailer = %q (trailers %v)", got, res.Trailer)
		}
		if got := res.Trailer.Get("X-Undeclared"); got != "u" {
			t.Errorf("undeclared trailer = %q (trailers %v)", got, res.Trailer)
		}
	}},
	{name: "request trailers", run: func(t *testing.T, e *env) {
		pr, pw := io.Pipe()
		req, _ := http.NewRequest("POST", e.url("/echo"), pr)
		req.Trailer = http.Header{"X-Req-Trailer": nil}
		go func() {
			io.WriteString(pw, "data")
			req.Trailer.Set("X-Req-Trailer", "rt")
			pw.Close()
		}()
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if got := res.Header.Get("X-Got-Trailer-X-Req-Trailer"); got != "rt" {
			t.Errorf("app saw request trailer %q", got)
		}
	}},
	{name: "expect 100-continue", h1Only: true, run: func(t *testing.T, e *env) {
		got100 := false
		trace := &httptrace.ClientTrace{Got100Continue: func() { got100 = true }}
		body := strings.Repeat("x", 1000)
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "PUT", e.url("/echo"), strings.NewReader(body))
		req.Header.Set("Expect", "100-continue")
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if !got100 {
			t.Error("client got no 100 Continue")
		}
		if string(b) != body {
			t.Errorf("echo %d bytes, want %d", len(b), len(body))
		}
		// Between proxies the body travels at once over HTTP/2 (the inbound
		// server consumed the expectation): the app need not see it.
		if got := res.Header.Get("X-Got-Expect"); got != "100-continue" && !e.mesh {
			t.Errorf("app saw Expect %q", got)
		}
	}},
	{name: "streaming response flushed", run: func(t *testing.T, e *env) {
		id := e.proto.String() + "-stream"
		res, err := e.client.Get(e.url("/stream?id=" + id))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		buf := make([]byte, 6)
		done := make(chan error, 1)
		go func() { _, err := io.ReadFull(res.Body, buf); done <- err }()
		select {
		case err := <-done:
			if err != nil || string(buf) != "first;" {
				t.Fatalf("first chunk %q, %v", buf, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("first chunk held back by the proxy")
		}
		close(e.app.chan_(e.app.release, id))
		rest, err := io.ReadAll(res.Body)
		if err != nil || string(rest) != "second" {
			t.Errorf("rest %q, %v", rest, err)
		}
	}},
	{name: "large upload 16MiB", run: func(t *testing.T, e *env) {
		const n = 16 << 20
		h := sha256.New()
		src := io.TeeReader(io.LimitReader(patternReader{}, n), h)
		req, _ := http.NewRequest("POST", e.url("/hash"), io.NopCloser(src)) // streamed, length unknown
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if want := fmt.Sprintf("%d %s", n, hex.EncodeToString(h.Sum(nil))); string(b) != want {
			t.Errorf("app got %q, want %q", b, want)
		}
	}},
	{name: "large download 16MiB", run: func(t *testing.T, e *env) {
		res, err := e.client.Get(e.url("/big?mib=16"))
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		want := pattern(1 << 20)
		buf := make([]byte, 1<<20)
		for i := 0; i < 16; i++ {
			if _, err := io.ReadFull(res.Body, buf); err != nil {
				t.Fatalf("MiB %d: %v", i, err)
			}
			if !bytes.Equal(buf, want) {
				t.Fatalf("MiB %d differs", i)
			}
		}
		if n, _ := io.Copy(io.Discard, res.Body); n != 0 {
			t.Errorf("%d extra bytes", n)
		}
	}},
	{name: "client cancel reaches the app", run: func(t *testing.T, e *env) {
		id := e.proto.String() + "-cancel"
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url("/wait?id="+id), nil)
		res, err := e.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		cancel()
		res.Body.Close()
		if err := waitFor(e.app.chan_(e.app.cancelled, id), 5*time.Second); err != nil {
			t.Fatal("the app's request context was not cancelled")
		}
	}},
	{name: "upstream reset is not a clean end", run: func(t *testing.T, e *env) {
		res, err := e.client.Get(e.url("/reset"))
		if err != nil {
			return // reset before headers: an error too
		}
		defer res.Body.Close()
		b, err := io.ReadAll(res.Body)
		if err == nil {
			t.Errorf("body %q read to a clean end; want an error", b)
		}
	}},
	{name: "upgrade echo", h1Only: true, run: func(t *testing.T, e *env) {
		c, err := net.Dial("tcp", e.outAddr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprintf(c, "GET /ws HTTP/1.1\r\nHost: %s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", webHost)
		br := bufio.NewReader(c)
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 101 || res.Header.Get("Upgrade") != "websocket" {
			t.Fatalf("got %d %v", res.StatusCode, res.Header)
		}
		for _, msg := range []string{"ping", "pong-" + strconv.Itoa(42)} {
			io.WriteString(c, msg)
			buf := make([]byte, len(msg))
			if _, err := io.ReadFull(br, buf); err != nil || string(buf) != msg {
				t.Fatalf("echo %q, %v", buf, err)
			}
		}
	}},
}

type patternReader struct{}

func (patternReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(i)
	}
	return len(p), nil
}

func TestForward(t *testing.T) {
	for _, tp := range topologies {
		t.Run(tp.name, func(t *testing.T) {
			e := newEnv(t, tp, envOpts{})
			for _, f := range features {
				if f.h1Only && tp.proto != HTTP1 {
					continue
				}
				t.Run(f.name, func(t *testing.T) { f.run(t, e) })
			}
			t.Run("golden metrics", func(t *testing.T) { checkGoldenMetrics(t, e) })
		})
	}
}

func checkGoldenMetrics(t *testing.T, e *env) {
	tls := strconv.FormatBool(e.mesh)
	out := map[string]string{"direction": "outbound", "authority": webAuth, "tls": tls, "client_id": "",
		"dst_namespace": "default", "dst_service": "web", "dst_pod": "web-0"}
	reqs := metricValue(t, e.out.reg, "meshlet_request_total", out)
	if reqs < 10 {
		t.Errorf("outbound requests %v with labels %v", reqs, out)
	}
	if v := metricValue(t, e.out.reg, "meshlet_response_latency_ms", out); v < 10 {
		t.Errorf("outbound latency observations %v", v)
	}
	out["classification"] = "success"
	out["status_code"] = "200"
	if v := metricValue(t, e.out.reg, "meshlet_response_total", out); v < 10 {
		t.Errorf("outbound successful responses %v", v)
	}
	if !e.mesh {
		return
	}
	in := map[string]string{"direction": "inbound", "authority": webHost, "tls": "true", "client_id": clientID}
	if v := metricValue(t, e.in.reg, "meshlet_request_total", in); v < 10 {
		t.Errorf("inbound requests %v with labels %v", v, in)
	}
}
