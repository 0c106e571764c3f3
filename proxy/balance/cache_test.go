package balance

import (
	"testing"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// countingResolver is a real endpoint.Static that also counts live watches.
type countingResolver struct {
	endpoint.Static
	watches chan int // +1 on Watch, -1 on stop
}

func (r *countingResolver) Watch(a string, fn func(endpoint.Set)) func() {
	r.watches <- 1
	stop := r.Static.Watch(a, fn)
	return func() { stop(); r.watches <- -1 }
}

func TestCacheFollowsResolverAndDropsIdle(t *testing.T) {
	r := &countingResolver{watches: make(chan int, 16)}
	r.Set("web:80", set(2))
	c := NewCache(r, Config{}, 50*time.Millisecond)
	defer c.Close()

	b := c.Get("web:80")
	if b2 := c.Get("web:80"); b2 != b {
		t.Fatal("second Get made a new balancer")
	}
	if got := <-r.watches; got != 1 {
		t.Fatalf("watch count %d", got)
	}
	if len(b.Endpoints()) != 2 || !b.Exists() {
		t.Fatalf("balancer has %d endpoints, exists=%v", len(b.Endpoints()), b.Exists())
	}
	r.Set("web:80", set(3))
	if len(b.Endpoints()) != 3 {
		t.Fatalf("update not applied: %d endpoints", len(b.Endpoints()))
	}
	if c.Get("unknown:80").Exists() {
		t.Fatal("an authority the resolver doesn't know exists")
	}
	<-r.watches
	n := 0
	c.Range(func(string, *Balancer) { n++ })
	if n != 2 {
		t.Fatalf("Range saw %d authorities, want 2", n)
	}
	// Unused, both are dropped within two idle periods.
	deadline := time.After(5 * time.Second)
	for stopped := 0; stopped < 2; {
		select {
		case d := <-r.watches:
			if d != -1 {
				t.Fatalf("unexpected watch event %d", d)
			}
			stopped++
		case <-deadline:
			t.Fatal("idle balancers were not dropped")
		}
	}
	if c.Get("web:80") == b {
		t.Fatal("Get after eviction returned the dropped balancer")
	}
	<-r.watches
}

func TestCacheCloseStopsWatches(t *testing.T) {
	r := &countingResolver{watches: make(chan int, 16)}
	c := NewCache(r, Config{}, time.Hour)
	c.Get("a:1")
	c.Get("b:1")
	c.Close()
	c.Close() // idempotent
	sum := 0
	for i := 0; i < 4; i++ {
		sum += <-r.watches
	}
	if sum != 0 {
		t.Fatalf("%d watches left running after Close", sum)
	}
}
