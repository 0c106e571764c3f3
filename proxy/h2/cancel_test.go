package h2_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestServerClientCancel: a client that cancels its request resets the
// stream, which must end the handler's context.
func TestServerClientCancel(t *testing.T) {
	checkGoroutines(t)
	started := make(chan struct{})
	ctxDone := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(200)
		w.(http.Flusher).Flush()
		close(started)
		select {
		case <-r.Context().Done():
			ctxDone <- r.Context().Err()
		case <-time.After(10 * time.Second):
			ctxDone <- errors.New("request context not done after the client canceled")
		}
	}), nil)
	client, _ := xnetClient(t)

	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", ts.url("/wait"), nil)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	within(t, started, 5*time.Second, "handler start")
	cancel()
	if err := within(t, ctxDone, 15*time.Second, "handler"); !errors.Is(err, context.Canceled) {
		t.Errorf("handler context: %v, want context.Canceled", err)
	}
}

// TestServerClientCancelConnSurvives: after a client reset, the same
// connection serves the next request.
func TestServerClientCancelConnSurvives(t *testing.T) {
	started := make(chan struct{}, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			w.WriteHeader(200)
			w.(http.Flusher).Flush()
			started <- struct{}{}
			<-r.Context().Done()
			return
		}
		io.WriteString(w, "ok")
	}), nil)
	client, _ := xnetClient(t)
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", ts.url("/wait"), nil)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		within(t, started, 5*time.Second, "handler start")
		cancel()
		resp.Body.Close()
		resp, err = client.Get(ts.url("/ok"))
		if err != nil {
			t.Fatalf("round %d: request after a reset: %v", i, err)
		}
		if got := mustRead(t, resp); got != "ok" {
			t.Errorf("round %d: body %q", i, got)
		}
	}
	if got := ts.accepted.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
}

// TestServerAbortHandler: a handler that panics with http.ErrAbortHandler
// mid-body resets its stream; the client's read fails, and another stream
// open on the same connection completes untouched.
func TestServerAbortHandler(t *testing.T) {
	checkGoroutines(t)
	longStarted := make(chan struct{})
	releaseLong := make(chan struct{})
	logged := make(chan string, 4)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/long":
			io.WriteString(w, "first,")
			w.(http.Flusher).Flush()
			close(longStarted)
			<-releaseLong
			io.WriteString(w, "second")
		case "/abort":
			io.WriteString(w, strings.Repeat("x", 1000))
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		case "/ok":
			io.WriteString(w, "ok")
		}
	}), func(s *serverT) {
		s.ErrorLog = func(msg string, args ...any) { logged <- msg }
	})
	client, _ := xnetClient(t)

	longResp, err := client.Get(ts.url("/long"))
	if err != nil {
		t.Fatal(err)
	}
	defer longResp.Body.Close()
	within(t, longStarted, 5*time.Second, "long handler")

	resp, err := client.Get(ts.url("/abort"))
	if err == nil {
		b, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("aborted stream: read %d bytes and a clean EOF, want a stream error", len(b))
		}
	}

	resp, err = client.Get(ts.url("/ok"))
	if err != nil {
		t.Fatalf("request after the abort: %v", err)
	}
	if got := mustRead(t, resp); got != "ok" {
		t.Errorf("body %q", got)
	}
	close(releaseLong)
	if got, err := io.ReadAll(longResp.Body); err != nil || string(got) != "first,second" {
		t.Errorf("long stream: %q %v", got, err)
	}
	if got := ts.accepted.Load(); got != 1 {
		t.Errorf("%d connections, want 1", got)
	}
	select {
	case msg := <-logged:
		t.Errorf("ErrorLog called for http.ErrAbortHandler: %q", msg)
	default:
	}
}

// TestServerHandlerPanic: any other panic resets the stream too and is
// logged; the connection survives.
func TestServerHandlerPanic(t *testing.T) {
	logged := make(chan string, 4)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			panic("boom")
		}
		io.WriteString(w, "ok")
	}), func(s *serverT) {
		s.ErrorLog = func(msg string, args ...any) { logged <- msg }
	})
	client, _ := xnetClient(t)
	resp, err := client.Get(ts.url("/panic"))
	if err == nil {
		_, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		if rerr == nil {
			t.Errorf("panicking handler: clean EOF, want a stream error")
		}
	}
	within(t, logged, 5*time.Second, "ErrorLog call for a handler panic")
	resp, err = client.Get(ts.url("/ok"))
	if err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, resp); got != "ok" {
		t.Errorf("body %q", got)
	}
}
