package httpproxy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// app is the test application: an HTTP/1.1 and h2c server on loopback whose
// handlers exercise what the proxy must carry.
type app struct {
	srv  *httptest.Server
	addr string

	mu        sync.Mutex
	cancelled map[string]chan struct{} // /wait requests whose context ended, by id
	release   map[string]chan struct{} // /stream requests waiting for the client, by id
	remotes   []string                 // RemoteAddr of each request, in order
}

func newApp(t testing.TB) *app {
	a := &app{cancelled: map[string]chan struct{}{}, release: map[string]chan struct{}{}}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(a.serve))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)
	a.srv, a.addr = srv, srv.Listener.Addr().String()
	return a
}

func (a *app) chan_(m map[string]chan struct{}, id string) chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	ch, ok := m[id]
	if !ok {
		ch = make(chan struct{})
		m[id] = ch
	}
	return ch
}

func (a *app) serve(w http.ResponseWriter, r *http.Request) {
	a.mu.Lock()
	a.remotes = append(a.remotes, r.RemoteAddr)
	a.mu.Unlock()
	h := w.Header()
	h.Set("X-Got-Host", r.Host)
	h.Set("X-Got-Proto", r.Proto)
	var hop []string
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "X-Hop", "Upgrade", "Meshlet-Orig-Proto", "Te"} {
		if v := r.Header.Get(k); v != "" {
			hop = append(hop, k+"="+v)
		}
	}
	h.Set("X-Got-Hop", strings.Join(hop, ";"))
	switch r.URL.Path {
	case "/echo": // the body back, and the request trailers as headers
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		for k, v := range r.Trailer {
			h.Set("X-Got-Trailer-"+k, strings.Join(v, ","))
		}
		h.Set("X-Got-Expect", r.Header.Get("Expect"))
		w.Write(body)
	case "/hash": // sha256 and length of the body
		s := sha256.New()
		n, err := io.Copy(s, r.Body)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		fmt.Fprintf(w, "%d %s", n, hex.EncodeToString(s.Sum(nil)))
	case "/big": // n MiB of a known pattern
		var n int
		fmt.Sscan(r.URL.Query().Get("mib"), &n)
		buf := pattern(1 << 20)
		for i := 0; i < n; i++ {
			if _, err := w.Write(buf); err != nil {
				return
			}
		}
	case "/trailers":
		h.Set("Trailer", "X-Declared")
		h.Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		io.WriteString(w, "body")
		h.Set("X-Declared", "d")
		h.Set(http.TrailerPrefix+"X-Undeclared", "u")
	case "/hopresp":
		h.Set("Connection", "X-Resp-Hop")
		h.Set("X-Resp-Hop", "1")
		h.Set("Keep-Alive", "timeout=5")
		io.WriteString(w, "ok")
	case "/stream": // one chunk, then wait for the client to have read it, then another
		id := r.URL.Query().Get("id")
		io.WriteString(w, "first;")
		w.(http.Flusher).Flush()
		select {
		case <-a.chan_(a.release, id):
		case <-time.After(10 * time.Second):
			return
		}
		io.WriteString(w, "second")
	case "/wait": // block until the client goes away
		id := r.URL.Query().Get("id")
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		<-r.Context().Done()
		close(a.chan_(a.cancelled, id))
	case "/reset": // part of a body, then abort the response
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(200)
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
		panic(http.ErrAbortHandler)
	case "/slow":
		select {
		case <-time.After(5 * time.Second):
		case <-r.Context().Done():
		}
	case "/status":
		var code int
		fmt.Sscan(r.URL.Query().Get("code"), &code)
		w.WriteHeader(code)
	case "/ws": // an Upgrade echo: 101, then every byte back
		if r.Header.Get("Upgrade") != "websocket" {
			http.Error(w, "no upgrade", 400)
			return
		}
		c, brw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			return
		}
		defer c.Close()
		brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
		brw.Flush()
		io.Copy(c, brw)
	default:
		io.WriteString(w, "hello")
	}
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i>>8)
	}
	return b
}
