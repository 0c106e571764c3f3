package httpproxy

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/balance"
)

// epInfo is what the proxy derives once from a balancer endpoint, so the
// hot path neither formats addresses nor parses identities nor hashes
// labels per request.
type epInfo struct {
	addr    string
	peer    spiffeid.ID
	peerErr error
	dst     [5]string

	last atomic.Pointer[route] // route of the last request to this endpoint
}

// epCache maps *balance.Endpoint to *epInfo. Entries of endpoints no
// balancer holds any more are swept periodically.
type epCache struct {
	m    sync.Map
	stop chan struct{}
	wg   sync.WaitGroup
}

func (p *Proxy) endpointInfo(ep *balance.Endpoint) *epInfo {
	if v, ok := p.eps.m.Load(ep); ok {
		return v.(*epInfo)
	}
	info := &epInfo{addr: ep.Addr.String()}
	if ep.Identity != "" {
		info.peer, info.peerErr = spiffeid.FromString(ep.Identity)
	}
	for i, k := range dstLabelKeys {
		info.dst[i] = ep.Labels[k]
	}
	v, _ := p.eps.m.LoadOrStore(ep, info)
	return v.(*epInfo)
}

func (p *Proxy) endpointRoute(info *epInfo, authority string, tls bool) *route {
	r := info.last.Load()
	if r != nil && r.key.authority == authority && r.key.tls == tls {
		return r
	}
	r = p.metrics.route(routeKey{dir: Outbound, tls: tls, authority: authority, dst: info.dst})
	info.last.Store(r)
	return r
}

// startSweep drops, every interval, the entries of endpoints that left all
// balancers, so endpoint churn does not grow the cache, and closes pooled
// upstream connections that idled out.
func (p *Proxy) startSweep(interval time.Duration) {
	p.eps.stop = make(chan struct{})
	p.eps.wg.Add(1)
	go func() {
		defer p.eps.wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.eps.stop:
				return
			case <-t.C:
			}
			p.up.sweep()
			if p.cfg.Balancers == nil {
				continue
			}
			live := make(map[*balance.Endpoint]struct{})
			p.cfg.Balancers.Range(func(_ string, b *balance.Balancer) {
				for _, ep := range b.Endpoints() {
					live[ep] = struct{}{}
				}
			})
			p.eps.m.Range(func(k, _ any) bool {
				if _, ok := live[k.(*balance.Endpoint)]; !ok {
					p.eps.m.Delete(k)
				}
				return true
			})
		}
	}()
}

func (p *Proxy) stopSweep() {
	if p.eps.stop != nil {
		close(p.eps.stop)
		p.eps.wg.Wait()
		p.eps.stop = nil
	}
}
