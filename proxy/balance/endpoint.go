package balance

import (
	"math"
	"sync"
	"sync/atomic"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// Endpoint is one upstream address with its load statistics. The embedded
// metadata is immutable; the statistics are updated by Start and Done from
// any goroutine.
type Endpoint struct {
	endpoint.Endpoint

	clock   func() int64
	tau     float64 // decay time constant, ns
	weight  float64
	penalty int64 // least latency recorded for a failure, ns

	pending atomic.Int64
	// rtt and stamp together are the peak-EWMA estimate: rtt (ns, as
	// float64 bits) as of stamp (clock ns). Pick reads them without a lock;
	// a read racing an update sees a slightly stale pair, which only nudges
	// one comparison. Writers serialise on mu so no update is lost.
	rtt   atomic.Uint64
	stamp atomic.Int64
	mu    sync.Mutex
	// measured is false until the first successful sample: until then rtt
	// holds DefaultRTT, a placeholder rather than a measurement. The field
	// is guarded by mu; measuredFlag mirrors it for lock-free readers.
	measured     bool
	measuredFlag atomic.Bool
}

func newEndpoint(ep endpoint.Endpoint, cfg *Config, now int64) *Endpoint {
	e := &Endpoint{Endpoint: ep, clock: cfg.clock, tau: float64(cfg.Decay), weight: 1, penalty: int64(cfg.FailurePenalty)}
	if ep.Weight > 0 {
		e.weight = float64(ep.Weight)
	}
	e.rtt.Store(math.Float64bits(float64(cfg.DefaultRTT)))
	e.stamp.Store(now)
	return e
}

// Start records that a request (or a connection attempt) to e begins and
// returns its start time, to be passed to Done.
func (e *Endpoint) Start() int64 {
	e.pending.Add(1)
	return e.clock()
}

// Done records the end of a request begun with Start. A failed request
// (connect error, 5xx) is recorded with at least the failure penalty as its
// latency, so an endpoint that fails fast does not look fast.
//
// The penalty is blended into the estimate like an ordinary sample rather
// than replacing it as a slower measured latency would (peak sensitivity):
// one stray error then nudges the cost up for a moment, while an endpoint
// that keeps failing converges to a cost near failure-rate × penalty and
// is left with little traffic, probed again as its idle estimate decays.
func (e *Endpoint) Done(start int64, failed bool) {
	now := e.clock()
	e.pending.Add(-1)
	rtt := now - start
	peak := true
	if failed && rtt < e.penalty {
		rtt, peak = e.penalty, false
	}
	e.observe(float64(rtt), now, peak)
}

// observe folds one latency sample into the peak-EWMA estimate: with peak
// set, a sample above the estimate replaces it at once; otherwise the sample
// is blended in with a weight that grows with the time since the last one.
func (e *Endpoint) observe(rtt float64, now int64, peak bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	cur := math.Float64frombits(e.rtt.Load())
	switch {
	case !e.measured && peak:
		// The first measured latency replaces the default outright.
		// Blending it with an invented value would hide, for about τ,
		// how much faster or slower this endpoint is than its peers: with
		// τ = 10s, steering away from a slow endpoint would take tens of
		// seconds after every endpoint set change. (Linkerd blends; this
		// is a deliberate difference.)
	case !peak || rtt < cur:
		// A first failure is blended into the default: one early error
		// must not brand a new endpoint with the whole penalty.
		elapsed := float64(now - e.stamp.Load())
		if elapsed < 0 {
			elapsed = 0
		}
		w := math.Exp(-elapsed / e.tau)
		rtt = cur*w + rtt*(1-w)
	}
	if !e.measured {
		e.measured = true
		defer e.measuredFlag.Store(true) // once rtt holds the sample
	}
	e.rtt.Store(math.Float64bits(rtt))
	e.stamp.Store(now)
}

// load is the endpoint's cost at time now: the RTT estimate, decayed
// towards zero for the time without samples (so an idle, once-slow endpoint
// is probed again), multiplied by the requests in flight plus one, and
// divided by the weight.
//
// An endpoint not yet measured costs nothing while it has no request in
// flight, so a new endpoint is probed at once (as Finagle's peak EWMA does);
// with requests in flight it costs DefaultRTT per request, so it is not
// flooded before its first answer says how fast it is.
func (e *Endpoint) load(now int64) float64 {
	pending := float64(e.pending.Load())
	if !e.measuredFlag.Load() {
		return math.Float64frombits(e.rtt.Load()) * pending / e.weight
	}
	rtt := math.Float64frombits(e.rtt.Load())
	if elapsed := now - e.stamp.Load(); elapsed > 0 {
		rtt *= math.Exp(-float64(elapsed) / e.tau)
	}
	return rtt * (pending + 1) / e.weight
}

// Cost returns the endpoint's current load, in nanoseconds of expected
// latency, as the balancer compares it.
func (e *Endpoint) Cost() float64 { return e.load(e.clock()) }

// RTT returns the endpoint's current latency estimate, without in-flight
// weighting.
func (e *Endpoint) RTT() float64 {
	return math.Float64frombits(e.rtt.Load())
}

// InFlight returns the number of requests started and not yet done.
func (e *Endpoint) InFlight() int64 { return e.pending.Load() }
