package h2_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/h2"
)

// Cancelled streams must give back the connection window they took but did
// not send: after many cancellations in both directions on one connection
// with the smallest windows, a large upload and a large download still
// complete. Before the fix the connection's send window leaked away and the
// last transfer blocked for ever.
func TestCancelsKeepConnectionWindow(t *testing.T) {
	checkGoroutines(t)
	big := bytes.Repeat([]byte("x"), 256<<10)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.Write(big)
			return
		}
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		io.Copy(io.Discard, r.Body)
	}), func(s *h2.Server) { s.ConnWindow, s.StreamWindow = 65535, 65535 })
	cc := dialClient(t, ts.addr, h2.ClientConfig{ConnWindow: 65535, StreamWindow: 65535})

	var wg sync.WaitGroup
	for g := 0; g < 16; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 20; i++ {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(100+(g*37+i*53)%2000)*time.Microsecond)
				path, body := "/up", io.Reader(bytes.NewReader(big))
				if i%2 == 1 {
					path, body = "/down", nil
				}
				req, _ := http.NewRequestWithContext(ctx, "POST", ts.url(path), body)
				if res, err := cc.RoundTrip(req); err == nil {
					io.Copy(io.Discard, res.Body)
					res.Body.Close()
				}
				cancel()
			}
		}(g)
	}
	if !waitGroupTimeout(&wg, 30*time.Second) {
		t.Fatal("cancelled requests did not finish")
	}

	for _, path := range []string{"/up", "/down"} {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var body io.Reader
		if path == "/up" {
			body = bytes.NewReader(bytes.Repeat(big, 4))
		}
		req, _ := http.NewRequestWithContext(ctx, "POST", ts.url(path), body)
		res, err := cc.RoundTrip(req)
		if err != nil {
			t.Fatalf("%s after the cancellations: %v (the connection window leaked)", path, err)
		}
		n, err := io.Copy(io.Discard, res.Body)
		res.Body.Close()
		cancel()
		if err != nil {
			t.Fatalf("%s after the cancellations: %d bytes, %v (the connection window leaked)", path, n, err)
		}
		if path == "/down" && n != int64(len(big)) {
			t.Errorf("%s: %d bytes, want %d", path, n, len(big))
		}
	}
}
