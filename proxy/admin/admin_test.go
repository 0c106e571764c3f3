package admin

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestAdmin(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "meshlet_test_total", Help: "test"})
	reg.MustRegister(c)
	c.Add(3)
	var notReady atomic.Pointer[error]
	e := errors.New("no identity yet")
	notReady.Store(&e)
	srv := httptest.NewServer(Handler(reg, func() error {
		if p := notReady.Load(); p != nil {
			return *p
		}
		return nil
	}, false))
	defer srv.Close()
	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, tc := range []struct {
		path     string
		ready    bool
		wantCode int
		wantBody string
	}{
		{"/ready", false, 503, "no identity yet"},
		{"/live", false, 200, "live"},
		{"/metrics", false, 200, "meshlet_test_total 3"},
		{"/ready", true, 200, "ready"},
		{"/nope", true, 404, ""},
		{"/debug/pprof/", true, 404, ""}, // off unless asked for
	} {
		if tc.ready {
			notReady.Store(nil)
		}
		code, body := get(tc.path)
		if code != tc.wantCode || !strings.Contains(body, tc.wantBody) {
			t.Errorf("GET %s = %d %q, want %d containing %q", tc.path, code, body, tc.wantCode, tc.wantBody)
		}
	}
}

func TestAdminPprof(t *testing.T) {
	srv := httptest.NewServer(Handler(prometheus.NewRegistry(), func() error { return nil }, true))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(b), "goroutine profile") {
		t.Fatalf("pprof: %d %.80q", resp.StatusCode, b)
	}
}
