// Package balance picks an endpoint for each request (HTTP) or connection
// (TCP) with peak-EWMA cost and the power of two choices, as Finagle and
// Linkerd do.
//
// Each endpoint keeps a latency estimate that jumps up to any slower sample
// at once and decays towards faster ones over the time constant Decay. Its
// cost is that estimate times (requests in flight + 1). Pick draws two
// distinct endpoints at random and takes the cheaper, which steers load away
// from slow or busy endpoints without the herding of always taking the
// cheapest. Failed requests count as at least FailurePenalty of latency.
//
// The endpoint set is an immutable snapshot swapped atomically by Update;
// Pick takes no lock and allocates nothing.
package balance

import (
	"context"
	"math/rand/v2"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// Config tunes a Balancer. The zero value is ready to use.
type Config struct {
	// Decay is the EWMA time constant τ: after τ without samples an
	// estimate keeps 1/e of its weight. Zero means 10s.
	Decay time.Duration
	// DefaultRTT is the estimate of an endpoint not yet measured. Zero
	// means 30ms.
	DefaultRTT time.Duration
	// FailurePenalty is the least latency a failed request is recorded
	// with. Zero means 1s; it should exceed any healthy latency.
	FailurePenalty time.Duration

	// clock returns monotonic nanoseconds; tests replace it.
	clock func() int64
}

var base = time.Now()

func monotonic() int64 { return int64(time.Since(base)) }

func (c Config) withDefaults() Config {
	if c.Decay <= 0 {
		c.Decay = 10 * time.Second
	}
	if c.DefaultRTT <= 0 {
		c.DefaultRTT = 30 * time.Millisecond
	}
	if c.FailurePenalty <= 0 {
		c.FailurePenalty = time.Second
	}
	if c.clock == nil {
		c.clock = monotonic
	}
	return c
}

type snapshot struct {
	exists bool
	eps    []*Endpoint
}

// Balancer holds one authority's endpoints and picks among them.
type Balancer struct {
	cfg     Config
	snap    atomic.Pointer[snapshot]
	mu      sync.Mutex // serialises Update
	ready   chan struct{}
	readyMu sync.Once
}

// New returns a Balancer with no endpoints, not yet resolved.
func New(cfg Config) *Balancer {
	b := &Balancer{cfg: cfg.withDefaults(), ready: make(chan struct{})}
	b.snap.Store(&snapshot{})
	return b
}

// Update replaces the endpoint set. Endpoints whose address and metadata
// are unchanged keep their statistics and in-flight counts.
func (b *Balancer) Update(set endpoint.Set) {
	b.mu.Lock()
	defer b.mu.Unlock()
	old := b.snap.Load().eps
	byAddr := make(map[identityKey]*Endpoint, len(old))
	for _, e := range old {
		byAddr[key(e.Endpoint)] = e
	}
	now := b.cfg.clock()
	eps := make([]*Endpoint, 0, len(set.Endpoints))
	for _, ep := range set.Endpoints {
		if e, ok := byAddr[key(ep)]; ok && sameLabels(e.Labels, ep.Labels) {
			eps = append(eps, e)
			continue
		}
		eps = append(eps, newEndpoint(ep, &b.cfg, now))
	}
	b.snap.Store(&snapshot{exists: set.Exists, eps: eps})
	b.readyMu.Do(func() { close(b.ready) })
}

// identityKey is the part of an endpoint that identifies it for keeping
// statistics across updates (Labels, a map, is compared separately).
type identityKey struct {
	addr     netip.AddrPort
	weight   uint32
	identity string
	protocol endpoint.Protocol
	zone     string
}

func key(ep endpoint.Endpoint) identityKey {
	return identityKey{ep.Addr, ep.Weight, ep.Identity, ep.Protocol, ep.Zone}
}

func sameLabels(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// Pick returns the endpoint to use for the next request, or nil when there
// is none.
func (b *Balancer) Pick() *Endpoint {
	eps := b.snap.Load().eps
	switch n := len(eps); n {
	case 0:
		return nil
	case 1:
		return eps[0]
	default:
		i := rand.IntN(n)
		j := rand.IntN(n - 1)
		if j >= i {
			j++
		}
		now := b.cfg.clock()
		if x, y := eps[i], eps[j]; x.load(now) <= y.load(now) {
			return x
		} else {
			return y
		}
	}
}

// Wait returns nil once the first endpoint set has arrived, or ctx's error.
func (b *Balancer) Wait(ctx context.Context) error {
	select {
	case <-b.ready:
		return nil
	default:
	}
	select {
	case <-b.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Resolved reports whether the first endpoint set has arrived.
func (b *Balancer) Resolved() bool {
	select {
	case <-b.ready:
		return true
	default:
		return false
	}
}

// Exists reports whether the last set said the authority exists.
func (b *Balancer) Exists() bool { return b.snap.Load().exists }

// Endpoints returns the current endpoints. The slice is shared: read only.
func (b *Balancer) Endpoints() []*Endpoint { return b.snap.Load().eps }
