package discovery

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

// Client is an endpoint.Resolver backed by meshlet-destination. Close ends
// every stream.
type Client struct {
	cfg  Config
	conn *grpc.ClientConn
	api  pb.DestinationClient
	m    *metrics

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	res    map[string]*resolution
	closed bool
}

var _ endpoint.Resolver = (*Client)(nil)

// New returns a Client; no connection is made until the first Watch.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	opts := []grpc.DialOption{
		// Pings find a dead control plane behind a silent network; the
		// destination server permits one every 10s.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
	}
	if cfg.DialOptions == nil {
		opts = append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))
	}
	opts = append(opts, cfg.DialOptions...)
	conn, err := grpc.NewClient(cfg.Addr, opts...)
	if err != nil {
		return nil, fmt.Errorf("discovery: %w", err)
	}
	c := &Client{
		cfg:  cfg,
		conn: conn,
		api:  pb.NewDestinationClient(conn),
		m:    newMetrics(cfg.Registry),
		res:  make(map[string]*resolution),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c, nil
}

// Close stops every stream and closes the connection. Watches still open
// receive no more updates.
func (c *Client) Close() error {
	c.mu.Lock()
	c.closed = true
	for _, r := range c.res {
		if r.idle != nil {
			r.idle.Stop()
		}
		c.endLocked(r)
	}
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return c.conn.Close()
}

// Watch implements endpoint.Resolver. update is first called as soon as the
// authority's set is known: at once if another watcher already follows it.
// update must not call the returned stop.
func (c *Client) Watch(authority string, update func(endpoint.Set)) func() {
	key := normalize(authority)
	w := &watcher{update: update}
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return func() {}
	}
	r := c.res[key]
	if r == nil {
		r = c.startResolution(key)
	}
	if r.idle != nil {
		r.idle.Stop()
		r.idle = nil
	}
	r.watchers[w] = struct{}{}
	c.mu.Unlock()

	if set, ver, ok := r.current(); ok {
		w.deliver(set, ver)
	}
	var once sync.Once
	return func() { once.Do(func() { c.stop(r, w) }) }
}

func (c *Client) stop(r *resolution, w *watcher) {
	c.mu.Lock()
	delete(r.watchers, w)
	if len(r.watchers) == 0 && !c.closed {
		if c.cfg.IdleTimeout < 0 {
			c.endLocked(r)
		} else {
			r.idle = time.AfterFunc(c.cfg.IdleTimeout, func() {
				c.mu.Lock()
				defer c.mu.Unlock()
				if len(r.watchers) == 0 && c.res[r.authority] == r {
					c.endLocked(r)
				}
			})
		}
	}
	c.mu.Unlock()
	// Waiting for an update in flight to this watcher makes the contract
	// hold: no call to update starts after stop returns.
	w.mu.Lock()
	w.stopped = true
	w.mu.Unlock()
}

// endLocked drops r; its goroutine ends on its own (c.mu held).
func (c *Client) endLocked(r *resolution) {
	delete(c.res, r.authority)
	r.cancel()
	c.m.streams.Dec()
}

// normalize makes equivalent spellings share a stream: case and a trailing
// dot on the host do not matter.
func normalize(authority string) string {
	a := strings.ToLower(authority)
	if host, port, ok := strings.Cut(a, ":"); ok && !strings.Contains(port, ":") {
		return strings.TrimSuffix(host, ".") + ":" + port
	}
	return strings.TrimSuffix(a, ".")
}

// watcher serialises the calls to one watch's update.
type watcher struct {
	mu      sync.Mutex
	stopped bool
	last    uint64 // version last delivered
	update  func(endpoint.Set)
}

// deliver calls update unless the watch stopped or already has this
// version (a new watcher may get a set both from Watch and from the stream).
func (w *watcher) deliver(set endpoint.Set, version uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || version <= w.last {
		return
	}
	w.last = version
	w.update(set)
}

// resolution is one authority's stream and its last known set.
type resolution struct {
	c         *Client
	authority string
	cancel    context.CancelFunc

	// Guarded by c.mu.
	watchers map[*watcher]struct{}
	idle     *time.Timer

	mu      sync.Mutex
	known   bool
	set     endpoint.Set
	version uint64
}

func (c *Client) startResolution(key string) *resolution {
	ctx, cancel := context.WithCancel(c.ctx)
	r := &resolution{c: c, authority: key, cancel: cancel, watchers: make(map[*watcher]struct{})}
	c.res[key] = r
	c.m.streams.Inc()
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		r.run(ctx)
	}()
	return r
}

func (r *resolution) current() (endpoint.Set, uint64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.set, r.version, r.known
}

// publish records set and hands it to every watcher, unless nothing changed
// (a resync after a reconnect usually brings the same set back).
func (r *resolution) publish(set endpoint.Set) {
	r.mu.Lock()
	if r.known && equalSets(r.set, set) {
		r.mu.Unlock()
		return
	}
	r.known = true
	r.set = set
	r.version++
	ver := r.version
	r.mu.Unlock()

	r.c.mu.Lock()
	ws := make([]*watcher, 0, len(r.watchers))
	for w := range r.watchers {
		ws = append(ws, w)
	}
	r.c.mu.Unlock()
	for _, w := range ws {
		w.deliver(set, ver)
	}
}

var errStreamEnded = errors.New("discovery: stream ended by the server")
