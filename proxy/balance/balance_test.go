package balance

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

func addr(i int) netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), 80)
}

func set(n int) endpoint.Set {
	s := endpoint.Set{Exists: true}
	for i := 1; i <= n; i++ {
		s.Endpoints = append(s.Endpoints, endpoint.Endpoint{Addr: addr(i)})
	}
	return s
}

func TestPickEmptyAndSingle(t *testing.T) {
	b := New(Config{})
	if b.Resolved() || b.Pick() != nil {
		t.Fatal("new balancer is resolved or picks an endpoint")
	}
	b.Update(endpoint.Set{Exists: true})
	if !b.Resolved() || !b.Exists() || b.Pick() != nil {
		t.Fatal("empty set: want resolved, exists, no pick")
	}
	b.Update(set(1))
	if e := b.Pick(); e == nil || e.Addr != addr(1) {
		t.Fatalf("single endpoint: picked %v", e)
	}
}

func TestUpdateKeepsStatistics(t *testing.T) {
	var now int64
	b := New(Config{clock: func() int64 { return now }})
	b.Update(set(2))
	e1 := b.Endpoints()[0]
	start := e1.Start()
	now += int64(500 * time.Millisecond)
	e1.Done(start, false) // a slow sample: peak sensitivity takes it at once
	if got := time.Duration(e1.RTT()); got != 500*time.Millisecond {
		t.Fatalf("RTT after a 500ms sample = %v", got)
	}
	inflight := e1.Start()
	b.Update(set(3))
	if b.Endpoints()[0] != e1 {
		t.Fatal("an unchanged endpoint was replaced by Update")
	}
	if e1.InFlight() != 1 {
		t.Fatalf("in-flight count lost across Update: %d", e1.InFlight())
	}
	e1.Done(inflight, false)
	changed := set(3)
	changed.Endpoints[0].Identity = "spiffe://meshlet.local/ns/a/sa/b"
	b.Update(changed)
	if b.Endpoints()[0] == e1 {
		t.Fatal("an endpoint whose identity changed kept its old statistics")
	}
}

func TestSlowSampleRaisesCostAtOnce(t *testing.T) {
	var now int64
	b := New(Config{clock: func() int64 { return now }})
	b.Update(set(2))
	fast, slow := b.Endpoints()[0], b.Endpoints()[1]
	for i := 0; i < 100; i++ {
		s := fast.Start()
		now += int64(time.Millisecond)
		fast.Done(s, false)
		s = slow.Start()
		now += int64(time.Millisecond)
		slow.Done(s, false)
	}
	s := slow.Start()
	now += int64(200 * time.Millisecond)
	slow.Done(s, false)
	for i := 0; i < 100; i++ {
		if b.Pick() != fast {
			t.Fatal("picked the endpoint that just answered in 200ms over one answering in 1ms")
		}
	}
	// As traffic goes on to the fast endpoint, the slow one's estimate,
	// without samples, decays until it is probed again.
	probed := false
	for i := 0; i < 120000 && !probed; i++ { // at most two virtual minutes
		e := b.Pick()
		probed = e == slow
		s := e.Start()
		now += int64(time.Millisecond)
		e.Done(s, false)
	}
	if !probed {
		t.Fatal("the slow endpoint was never probed again after its estimate decayed")
	}
}

func TestInFlightRaisesCost(t *testing.T) {
	var now int64
	b := New(Config{clock: func() int64 { return now }})
	b.Update(set(2))
	busy, idle := b.Endpoints()[0], b.Endpoints()[1]
	for i := 0; i < 5; i++ {
		busy.Start()
	}
	for i := 0; i < 50; i++ {
		if b.Pick() != idle {
			t.Fatal("picked the endpoint with 5 requests in flight over an idle equal one")
		}
	}
}

func TestWeight(t *testing.T) {
	var now int64
	b := New(Config{clock: func() int64 { return now }})
	s := set(2)
	s.Endpoints[1].Weight = 4
	b.Update(s)
	light, heavy := b.Endpoints()[0], b.Endpoints()[1]
	for _, e := range []*Endpoint{light, heavy} { // equal latency
		s := e.Start()
		now += int64(time.Millisecond)
		e.Done(s, false)
	}
	heavy.Start() // cost ×2 but weight ×4: still the cheaper
	for i := 0; i < 50; i++ {
		if b.Pick() != heavy {
			t.Fatalf("weight ignored: light cost %v, heavy cost %v", light.Cost(), heavy.Cost())
		}
	}
}

func TestWait(t *testing.T) {
	b := New(Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if err := b.Wait(ctx); err == nil {
		t.Fatal("Wait returned before any set arrived")
	}
	go b.Update(set(1))
	if err := b.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrent exercises Pick, Start, Done and Update together for the
// race detector.
func TestConcurrent(t *testing.T) {
	b := New(Config{})
	b.Update(set(4))
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				e := b.Pick()
				if e == nil {
					t.Error("no endpoint picked")
					return
				}
				s := e.Start()
				e.Done(s, i%10 == 0)
			}
		}()
	}
	for i := 0; i < 50; i++ {
		b.Update(set(2 + i%4))
	}
	wg.Wait()
	for _, e := range b.Endpoints() {
		if e.InFlight() != 0 {
			t.Errorf("%v: %d in flight after all requests ended", e.Addr, e.InFlight())
		}
	}
}

func BenchmarkPick(b *testing.B) {
	for _, n := range []int{2, 10, 100} {
		bal := New(Config{})
		bal.Update(set(n))
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if bal.Pick() == nil {
						b.Fatal("no endpoint")
					}
				}
			})
		})
	}
}

// BenchmarkRequest is the balancer's whole cost per request: pick, start,
// done.
func BenchmarkRequest(b *testing.B) {
	bal := New(Config{})
	bal.Update(set(10))
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e := bal.Pick()
			e.Done(e.Start(), false)
		}
	})
}

func TestFirstSampleReplacesDefault(t *testing.T) {
	var now int64
	b := New(Config{clock: func() int64 { return now }})
	b.Update(set(2))
	fast, slow := b.Endpoints()[0], b.Endpoints()[1]
	for _, c := range []struct {
		e   *Endpoint
		rtt time.Duration
	}{{fast, 2 * time.Millisecond}, {slow, 20 * time.Millisecond}} {
		s := c.e.Start()
		now += int64(c.rtt)
		c.e.Done(s, false)
		if got := time.Duration(c.e.RTT()); got != c.rtt {
			t.Fatalf("estimate after the first %v sample = %v, want the sample itself (not blended with the 30ms default)", c.rtt, got)
		}
	}
	// A later faster sample is blended, not taken outright.
	s := slow.Start()
	now += int64(time.Millisecond)
	slow.Done(s, false)
	if got := time.Duration(slow.RTT()); got <= time.Millisecond || got >= 20*time.Millisecond {
		t.Fatalf("second sample not blended: estimate %v", got)
	}
	// A first failure is blended with the default, not taken outright.
	b.Update(endpoint.Set{Exists: true, Endpoints: []endpoint.Endpoint{{Addr: addr(9)}}})
	e := b.Endpoints()[0]
	s = e.Start()
	now += int64(time.Millisecond)
	e.Done(s, true)
	if got := time.Duration(e.RTT()); got >= time.Second {
		t.Fatalf("a first failure set the estimate to the full penalty: %v", got)
	}
}

func TestNewEndpointIsProbedAtOnce(t *testing.T) {
	var now int64
	b := New(Config{clock: func() int64 { return now }})
	b.Update(set(1))
	old := b.Endpoints()[0]
	for i := 0; i < 10; i++ {
		s := old.Start()
		now += int64(time.Millisecond)
		old.Done(s, false)
	}
	s2 := set(2)
	b.Update(s2)
	fresh := b.Endpoints()[1]
	if e := b.Pick(); e != fresh {
		t.Fatal("a new endpoint with nothing in flight was not probed at once")
	}
	fresh.Start() // its first request is under way: no more until it answers
	for i := 0; i < 20; i++ {
		if b.Pick() == fresh {
			t.Fatal("a new endpoint got a second request before its first answered")
		}
	}
}
