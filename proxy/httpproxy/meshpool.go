//lint:file-ignore SA1019 the pool plugs into x/net/http2.Transport's ConnPool hook (see upstream.go for why that transport is kept).

package httpproxy

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"sync"

	"golang.org/x/net/http2"
)

// meshPool is the HTTP/2 connection pool to meshed proxies. Unlike the
// transport's own pool, which knows only the address, it keys connections by
// address and expected peer identity: an address reused by a pod of another
// service is never reached over a connection authenticated for the old one.
// Normally there is one connection per endpoint carrying every stream; a new
// one is dialled only when that one refuses more streams.
type meshPool struct {
	u *upstreams
	t *http2.Transport

	mu      sync.Mutex
	conns   map[poolKey][]*http2.ClientConn
	dialing map[poolKey]*meshDial
	closed  bool
}

type poolKey struct {
	addr, identity string
}

type meshDial struct {
	done chan struct{}
	err  error
}

var errPoolClosed = errors.New("httpproxy: upstream pool closed")

// GetClientConn implements http2.ClientConnPool.
func (p *meshPool) GetClientConn(req *http.Request, addr string) (*http2.ClientConn, error) {
	c, _ := req.Context().Value(callKey{}).(*call)
	if c == nil {
		return nil, errors.New("httpproxy: mesh request without a call")
	}
	key := poolKey{addr, c.identity}
	// A fresh connection can be full before this request gets to it, when
	// many requests wait for the same dial; try a few dials before giving up.
	for attempt := 0; attempt < 3; attempt++ {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		for _, cc := range p.conns[key] {
			if cc.ReserveNewRequest() {
				p.mu.Unlock()
				return cc, nil
			}
		}
		d := p.dialing[key]
		if d == nil {
			d = &meshDial{done: make(chan struct{})}
			if p.dialing == nil {
				p.dialing = make(map[poolKey]*meshDial)
			}
			p.dialing[key] = d
			// The dial outlives the request that started it: others wait for it.
			go p.dial(context.WithoutCancel(req.Context()), key, d)
		}
		p.mu.Unlock()
		select {
		case <-d.done:
		case <-req.Context().Done():
			return nil, req.Context().Err()
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	return nil, errors.New("httpproxy: no HTTP/2 connection to " + addr + " accepts more streams")
}

func (p *meshPool) dial(ctx context.Context, key poolKey, d *meshDial) {
	var cc *http2.ClientConn
	tc, err := p.u.dialMesh(ctx, key.addr, "h2")
	if err == nil {
		cc, err = p.t.NewClientConn(tc)
		if err != nil {
			tc.Close()
		}
	}
	p.mu.Lock()
	delete(p.dialing, key)
	if err == nil {
		if p.closed {
			cc.Close()
			err = errPoolClosed
		} else {
			if p.conns == nil {
				p.conns = make(map[poolKey][]*http2.ClientConn)
			}
			p.conns[key] = append(p.conns[key], cc)
		}
	}
	d.err = err
	p.mu.Unlock()
	close(d.done)
}

// MarkDead implements http2.ClientConnPool: the transport calls it when a
// connection closes or goes away.
func (p *meshPool) MarkDead(cc *http2.ClientConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, ccs := range p.conns {
		if i := slices.Index(ccs, cc); i >= 0 {
			ccs = slices.Delete(ccs, i, i+1)
			if len(ccs) == 0 {
				delete(p.conns, k)
			} else {
				p.conns[k] = ccs
			}
			return
		}
	}
}

// close closes every pooled connection; in-flight streams fail.
func (p *meshPool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*http2.ClientConn
	for _, ccs := range p.conns {
		all = append(all, ccs...)
	}
	p.conns = nil
	p.mu.Unlock()
	for _, cc := range all { // not under the lock: Close calls MarkDead
		cc.Close()
	}
}
