package capture

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAwaitReady(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ready" || calls.Add(1) < 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")
	if err := RunAwait(context.Background(), []string{"--admin-addr=" + addr, "--timeout=10s"}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load(); n != 3 {
		t.Errorf("ready after %d polls, want 3", n)
	}
}

func TestAwaitReadyTimesOut(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	start := time.Now()
	err := AwaitReady(context.Background(), srv.URL+"/ready", 700*time.Millisecond, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "status 503") {
		t.Fatalf("AwaitReady = %v, want a timeout naming the last status", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %s to give up after 700ms", d)
	}
}
