package balance

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// Cache maps authorities to Balancers kept up to date by a Resolver. A
// balancer not used for an idle period is dropped and its watch stopped, so
// a proxy that once talked to many services does not follow them forever.
type Cache struct {
	r    endpoint.Resolver
	cfg  Config
	idle time.Duration

	m    sync.Map   // authority → *cacheEntry; read without a lock
	mu   sync.Mutex // serialises adding and removing entries
	done chan struct{}
	wg   sync.WaitGroup
}

type cacheEntry struct {
	b    *Balancer
	stop func()
	used atomic.Bool // set by Get, cleared by each sweep
}

// NewCache returns a Cache over r. idle is how long a balancer may go
// unused before it is dropped (between idle and twice idle, in fact); zero
// means one minute.
func NewCache(r endpoint.Resolver, cfg Config, idle time.Duration) *Cache {
	if idle <= 0 {
		idle = time.Minute
	}
	c := &Cache{r: r, cfg: cfg, idle: idle, done: make(chan struct{})}
	c.wg.Add(1)
	go c.sweep()
	return c
}

// Get returns the balancer for authority, starting to watch it on first
// use. Its endpoints may not be known yet: see Balancer.Wait.
func (c *Cache) Get(authority string) *Balancer {
	if v, ok := c.m.Load(authority); ok {
		e := v.(*cacheEntry)
		if !e.used.Load() { // avoid a write to a shared cache line per request
			e.used.Store(true)
		}
		return e.b
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m.Load(authority); ok {
		return v.(*cacheEntry).b
	}
	e := &cacheEntry{b: New(c.cfg)}
	e.used.Store(true)
	e.stop = c.r.Watch(authority, e.b.Update)
	c.m.Store(authority, e)
	return e.b
}

// Range calls fn for each authority and its balancer, for metrics.
func (c *Cache) Range(fn func(authority string, b *Balancer)) {
	c.m.Range(func(k, v any) bool {
		fn(k.(string), v.(*cacheEntry).b)
		return true
	})
}

// Close stops every watch and the sweeper.
func (c *Cache) Close() {
	c.mu.Lock()
	select {
	case <-c.done:
		c.mu.Unlock()
		return
	default:
	}
	close(c.done)
	c.mu.Unlock()
	c.wg.Wait()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m.Range(func(k, v any) bool {
		v.(*cacheEntry).stop()
		c.m.Delete(k)
		return true
	})
}

func (c *Cache) sweep() {
	defer c.wg.Done()
	t := time.NewTicker(c.idle)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		c.mu.Lock()
		c.m.Range(func(k, v any) bool {
			e := v.(*cacheEntry)
			if !e.used.Swap(false) {
				c.m.Delete(k)
				e.stop()
			}
			return true
		})
		c.mu.Unlock()
	}
}
