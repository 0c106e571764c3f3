// Package admin serves the proxy's admin endpoints: /metrics (Prometheus
// text from the proxy's own registry), /ready and /live.
package admin

import (
	"net/http"
	httppprof "net/http/pprof"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the admin mux. ready reports why the proxy cannot take
// traffic yet (or any more, while draining); nil means ready. It is called
// on every /ready request, so it must be cheap.
//
//   - /metrics: every metric in reg, with promhttp's own error metrics.
//   - /ready: 200 "ready" or 503 with the reason, for the kubelet's
//     readiness probe and `meshlet-proxy await`.
//   - /live: 200 while the process serves HTTP at all; a proxy that cannot
//     even answer this is stuck and should be restarted.
//   - /debug/pprof/: Go's profiler, only when pprof is true (it exposes
//     internals and costs CPU while profiling, so it is opt-in).
func Handler(reg *prometheus.Registry, ready func() error, pprof bool) http.Handler {
	mux := http.NewServeMux()
	if pprof {
		mux.HandleFunc("GET /debug/pprof/", httppprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", httppprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", httppprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", httppprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", httppprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.InstrumentMetricHandler(reg,
		promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, ErrorHandling: promhttp.ContinueOnError})))
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if err := ready(); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte("not ready: " + err.Error() + "\n")) //nolint:errcheck // the prober may be gone
			return
		}
		w.Write([]byte("ready\n")) //nolint:errcheck // the prober may be gone
	})
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("live\n")) //nolint:errcheck // the prober may be gone
	})
	return mux
}
