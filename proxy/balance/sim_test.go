package balance

import (
	"container/heap"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// A discrete-event simulation: requests arrive as a Poisson process at a
// fixed rate, each is sent to the endpoint the balancer picks, and completes
// after that endpoint's latency (with ±50% jitter). Time is virtual, so the
// test runs a minute of traffic in milliseconds and its result does not
// depend on the machine's speed.

type simEndpoint struct {
	latency  time.Duration
	failRate float64 // share of requests that fail (after latency)
}

type completion struct {
	at     int64
	ep     *Endpoint
	start  int64
	failed bool
}

type events []completion

func (h events) Len() int           { return len(h) }
func (h events) Less(i, j int) bool { return h[i].at < h[j].at }
func (h events) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *events) Push(x any)        { *h = append(*h, x.(completion)) }
func (h *events) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// simulate returns how many requests each endpoint received.
func simulate(t *testing.T, eps []simEndpoint, rps float64, d time.Duration, seed uint64) []int {
	t.Helper()
	var now int64
	b := New(Config{clock: func() int64 { return now }})
	set := endpoint.Set{Exists: true}
	index := map[netip.AddrPort]int{}
	for i := range eps {
		a := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 8080)
		index[a] = i
		set.Endpoints = append(set.Endpoints, endpoint.Endpoint{Addr: a})
	}
	b.Update(set)
	rng := rand.New(rand.NewPCG(seed, 1))
	counts := make([]int, len(eps))
	var pending events
	next := int64(0)
	for next < int64(d) {
		// Complete everything due before the next arrival.
		for pending.Len() > 0 && pending[0].at <= next {
			c := heap.Pop(&pending).(completion)
			now = c.at
			c.ep.Done(c.start, c.failed)
		}
		now = next
		ep := b.Pick()
		i := index[ep.Addr]
		counts[i]++
		start := ep.Start()
		lat := float64(eps[i].latency) * (0.5 + rng.Float64())
		heap.Push(&pending, completion{at: now + int64(lat), ep: ep, start: start, failed: rng.Float64() < eps[i].failRate})
		next += int64(rng.ExpFloat64() / rps * float64(time.Second))
	}
	return counts
}

func share(counts []int, i int) float64 {
	total := 0
	for _, c := range counts {
		total += c
	}
	return float64(counts[i]) / float64(total)
}

func TestSlowEndpointGetsLittleTraffic(t *testing.T) {
	for _, tc := range []struct {
		n   int
		rps float64
	}{{3, 1000}, {3, 5000}, {10, 2000}} {
		t.Run(fmt.Sprintf("%d endpoints at %.0f rps", tc.n, tc.rps), func(t *testing.T) {
			eps := make([]simEndpoint, tc.n)
			for i := range eps {
				eps[i] = simEndpoint{latency: 2 * time.Millisecond}
			}
			eps[0].latency = 20 * time.Millisecond // 10× slower
			counts := simulate(t, eps, tc.rps, time.Minute, 7)
			t.Logf("requests per endpoint: %v (slow: %.2f%%)", counts, 100*share(counts, 0))
			if s := share(counts, 0); s >= 0.05 {
				t.Errorf("slow endpoint got %.1f%% of requests (counts %v), want < 5%%", 100*s, counts)
			}
		})
	}
}

func TestEqualEndpointsShareEvenly(t *testing.T) {
	eps := make([]simEndpoint, 5)
	for i := range eps {
		eps[i] = simEndpoint{latency: 2 * time.Millisecond}
	}
	counts := simulate(t, eps, 2000, time.Minute, 11)
	t.Logf("requests per endpoint: %v", counts)
	for i := range counts {
		if s := share(counts, i); s < 0.8/5 || s > 1.2/5 {
			t.Errorf("endpoint %d got %.1f%% (counts %v), want 20%% ± 4", i, 100*s, counts)
		}
	}
}

func TestFastFailingEndpointIsPenalised(t *testing.T) {
	eps := []simEndpoint{
		{latency: 100 * time.Microsecond, failRate: 1}, // fails at once, every time
		{latency: 2 * time.Millisecond},
		{latency: 2 * time.Millisecond},
	}
	counts := simulate(t, eps, 1000, time.Minute, 3)
	t.Logf("requests per endpoint: %v", counts)
	if s := share(counts, 0); s >= 0.05 {
		t.Errorf("failing endpoint got %.1f%% of requests (counts %v), want < 5%%", 100*s, counts)
	}
}

func TestPartlyFailingEndpointGetsLess(t *testing.T) {
	eps := []simEndpoint{
		{latency: 2 * time.Millisecond, failRate: 0.2},
		{latency: 2 * time.Millisecond},
		{latency: 2 * time.Millisecond},
	}
	counts := simulate(t, eps, 1000, time.Minute, 5)
	t.Logf("requests per endpoint: %v", counts)
	if s := share(counts, 0); s >= 1.0/3*0.5 {
		t.Errorf("endpoint failing 20%% got %.1f%% (counts %v), want under half of an even share", 100*s, counts)
	}
}
