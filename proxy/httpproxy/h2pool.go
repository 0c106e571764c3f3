package httpproxy

import (
	"context"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/meshlet/meshlet/proxy/h2"
)

// h2Pool is a pool of HTTP/2 client connections (package h2), normally one
// per upstream carrying every stream; another is dialled only when that one
// refuses more streams. For meshed proxies connections are keyed by
// address and expected peer identity: an address reused by a pod of
// another service is never reached over a connection authenticated for the
// old one.
type h2Pool struct {
	dial        func(ctx context.Context, key poolKey) (net.Conn, error)
	mesh        bool // key by the call's peer identity too
	cfg         h2.ClientConfig
	idleTimeout time.Duration

	mu      sync.Mutex
	conns   map[poolKey][]*h2.ClientConn
	dialing map[poolKey]*poolDial
	closed  bool
}

type poolKey struct {
	addr, identity string
}

type poolDial struct {
	done chan struct{}
	err  error
}

var errPoolClosed = errors.New("httpproxy: upstream pool closed")

// RoundTrip sends req on a pooled connection. A request that a connection
// refused before any of it left (the connection was going away or full)
// goes again on another; so does one without a body that the server
// refused unprocessed (GOAWAY, REFUSED_STREAM), as x/net's transport does.
func (p *h2Pool) RoundTrip(req *http.Request) (*http.Response, error) {
	key := poolKey{addr: req.URL.Host}
	if p.mesh {
		c, _ := req.Context().Value(callKey{}).(*call)
		if c == nil {
			return nil, errors.New("httpproxy: mesh request without a call")
		}
		key.identity = c.identity
	}
	bodyless := req.Body == nil || req.Body == http.NoBody
	for attempt := 0; ; attempt++ {
		cc, err := p.get(req.Context(), key)
		if err != nil {
			return nil, err
		}
		res, err := cc.RoundTrip(req)
		if err == nil || attempt == 2 || !(errors.Is(err, h2.ErrNotSent) || bodyless && errors.Is(err, h2.ErrRefused)) {
			return res, err
		}
	}
}

// get returns a connection to key with a stream reserved, dialling one if
// none can take it.
func (p *h2Pool) get(ctx context.Context, key poolKey) (*h2.ClientConn, error) {
	// A fresh connection can be full before this request gets to it, when
	// many requests wait for the same dial; try a few dials before giving up.
	for attempt := 0; attempt < 3; attempt++ {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, errPoolClosed
		}
		for _, cc := range p.conns[key] {
			if cc.Reserve() {
				p.mu.Unlock()
				return cc, nil
			}
		}
		d := p.dialing[key]
		if d == nil {
			d = &poolDial{done: make(chan struct{})}
			if p.dialing == nil {
				p.dialing = make(map[poolKey]*poolDial)
			}
			p.dialing[key] = d
			// The dial outlives the request that started it: others wait for it.
			go p.dialConn(context.WithoutCancel(ctx), key, d)
		}
		p.mu.Unlock()
		select {
		case <-d.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	return nil, errors.New("httpproxy: no HTTP/2 connection to " + key.addr + " accepts more streams")
}

func (p *h2Pool) dialConn(ctx context.Context, key poolKey, d *poolDial) {
	var cc *h2.ClientConn
	c, err := p.dial(ctx, key)
	if err == nil {
		cfg := p.cfg
		cfg.OnGone = p.remove
		cc, err = h2.NewClientConn(c, cfg)
	}
	var late *h2.ClientConn // dialled after close: closed without the lock (Close calls remove)
	p.mu.Lock()
	delete(p.dialing, key)
	if err == nil {
		if p.closed {
			late, err = cc, errPoolClosed
		} else {
			if p.conns == nil {
				p.conns = make(map[poolKey][]*h2.ClientConn)
			}
			p.conns[key] = append(p.conns[key], cc)
		}
	}
	d.err = err
	p.mu.Unlock()
	if late != nil {
		late.Close()
	}
	close(d.done)
}

// remove drops a connection that takes no new requests (h2.ClientConfig.OnGone).
func (p *h2Pool) remove(cc *h2.ClientConn) {
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

// sweep closes connections idle for longer than the idle timeout.
func (p *h2Pool) sweep() {
	var all []*h2.ClientConn
	p.mu.Lock()
	for _, ccs := range p.conns {
		all = append(all, ccs...)
	}
	p.mu.Unlock()
	for _, cc := range all { // not under the lock: closing calls remove
		cc.CloseIfIdle(p.idleTimeout) // idle and unreserved, checked as one step
	}
}

// close closes every pooled connection; in-flight streams fail.
func (p *h2Pool) close() {
	p.mu.Lock()
	p.closed = true
	var all []*h2.ClientConn
	for _, ccs := range p.conns {
		all = append(all, ccs...)
	}
	p.conns = nil
	p.mu.Unlock()
	for _, cc := range all {
		cc.Close()
	}
}
