package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/balance"
	"github.com/meshlet/meshlet/proxy/detect"
	"github.com/meshlet/meshlet/proxy/httpproxy"
	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/rawio"
)

// outbound serves a connection from the application: detection, then the
// HTTP layer or opaque forwarding to the original destination's endpoints.
func (p *Proxy) outbound(c *net.TCPConn) {
	active := p.m.activeByDir[Outbound]
	active.Inc()
	defer active.Dec()

	dst, redirected := p.origDst(c)
	if redirected && (dst == p.outAddr || dst == p.outAddr6) {
		c.Close()
		p.warnRefused(Outbound, reasonLoop, "refusing a connection to the outbound listener itself", "dst", dst.String())
		return
	}
	// The port that decides: the original destination's, or, for a
	// direct connection, the listener's own (meshctl dev gives each
	// upstream its own outbound listener and lists it when opaque).
	port := p.outAddr.Port()
	if redirected {
		port = dst.Port()
	}
	var dc *detect.Conn
	if p.cfg.OpaquePorts.Contains(port) {
		p.m.detect.WithLabelValues("outbound", "skipped").Inc()
		dc = detect.Wrap(c)
	} else {
		var res detect.Result
		if dc, res = p.detect(c, Outbound); dc == nil {
			return
		}
		proto := res.Protocol
		if p.http != nil && (proto == detect.HTTP1 || proto == detect.HTTP2) {
			info := httpproxy.ConnInfo{Direction: Outbound, Protocol: httpproxy.HTTP1}
			if proto == detect.HTTP2 {
				info.Protocol = httpproxy.HTTP2
			}
			if redirected {
				info.OrigDst = dst
			}
			p.http.ServeConn(p.drainCtx, dc, info)
			return
		}
	}
	p.outboundTCP(dc, dst, redirected)
}

// outboundTCP forwards an opaque connection to the authority of its
// original destination: through the balancer when the control plane knows
// it (with mTLS to meshed endpoints), directly otherwise.
func (p *Proxy) outboundTCP(client *detect.Conn, dst netip.AddrPort, redirected bool) {
	authority := dst.String()
	if !redirected {
		if p.cfg.OutboundFallback == "" {
			client.Close()
			p.warnRefused(Outbound, reasonNoOrigDst,
				"refusing an opaque outbound connection that was not redirected: it has no original destination (set MESHLET_PROXY_OUTBOUND_FALLBACK to send such connections somewhere)",
				"client", client.RemoteAddr().String())
			return
		}
		authority = p.cfg.OutboundFallback
	}

	ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.ConnectTimeout)
	b := p.cache.Get(authority)
	var ep *balance.Endpoint
	if err := b.Wait(ctx); err != nil {
		// The control plane did not answer in time: forward as addressed
		// rather than fail, as for an authority it does not know.
		p.m.refuse(Outbound, reasonResolveTimeout)
		p.log.Debug("no resolution in time, forwarding to the original destination", "authority", authority, "err", err)
	} else if b.Exists() {
		if ep = b.Pick(); ep == nil {
			cancel()
			client.Close()
			p.warnRefused(Outbound, reasonNoEndpoints, "refusing a connection to an authority without ready endpoints", "authority", authority)
			return
		}
	}
	cancel()

	// One retry on another endpoint when the connect fails: nothing has
	// been sent upstream yet, and the client's bytes wait in the kernel.
	attempts := 1
	if ep != nil && len(b.Endpoints()) > 1 {
		attempts = 2
	}
	for attempt := 1; ; attempt++ {
		addr := authority
		var labels map[string]string
		var identity string
		if ep != nil {
			addr, labels, identity = ep.Addr.String(), ep.Labels, ep.Identity
		}
		if p.ownAddr(addr) {
			client.Close()
			p.warnRefused(Outbound, reasonLoop, "refusing to forward a connection to the proxy's own listener", "addr", addr)
			return
		}
		upstream, useTLS, reason, err := p.connectEndpoint(ep, addr, identity)
		if err == nil {
			p.forward(client, upstream, newTCPLabels(Outbound, authority, useTLS, "", labels))
			return
		}
		p.m.connectErrors.WithLabelValues("outbound", reason).Inc()
		var next *balance.Endpoint
		if attempt < attempts && p.hardCtx.Err() == nil {
			next = otherEndpoint(b, ep)
		}
		if next == nil {
			client.Close()
			p.warnRefused(Outbound, reason, "connecting to the destination failed", "authority", authority, "addr", addr, "err", err)
			return
		}
		p.log.Debug("connect failed, trying another endpoint", "authority", authority, "addr", addr, "err", err)
		ep = next
	}
}

// connectEndpoint connects to addr within the connect timeout, recording
// the attempt in the endpoint's load statistics (ep may be nil: a
// destination the control plane does not know).
func (p *Proxy) connectEndpoint(ep *balance.Endpoint, addr, identity string) (net.Conn, bool, string, error) {
	ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.ConnectTimeout)
	defer cancel()
	var start int64
	if ep != nil {
		start = ep.Start()
	}
	upstream, useTLS, reason, err := p.connectOutbound(ctx, addr, identity)
	if ep != nil {
		ep.Done(start, err != nil)
	}
	return upstream, useTLS, reason, err
}

// otherEndpoint returns the cheapest endpoint of b other than failed, or
// nil. It runs only after a failed connect, so a scan is fine; P2C could
// draw the endpoint that just failed again.
func otherEndpoint(b *balance.Balancer, failed *balance.Endpoint) *balance.Endpoint {
	var best *balance.Endpoint
	var bestCost float64
	for _, e := range b.Endpoints() {
		if e == failed {
			continue
		}
		if c := e.Cost(); best == nil || c < bestCost {
			best, bestCost = e, c
		}
	}
	return best
}

// connectOutbound dials addr and, when the endpoint is meshed (identity
// set) and this proxy has an identity, runs the mTLS handshake requiring
// exactly that identity, with ALPN "meshlet.io/opaque" so the peer
// forwards the stream as it is. Without an identity of its own the proxy
// connects in plaintext, and a permissive peer detects the protocol.
func (p *Proxy) connectOutbound(ctx context.Context, addr, identity string) (net.Conn, bool, string, error) {
	var peer spiffeid.ID
	meshed := identity != "" && p.cfg.Source != nil
	if meshed {
		var err error
		if peer, err = spiffeid.FromString(identity); err != nil {
			return nil, false, reasonBadIdentity, err
		}
	}
	raw, err := p.dialTCP(ctx, addr)
	if err != nil {
		return nil, false, reasonConnect, err
	}
	if !meshed {
		return raw, false, "", nil
	}
	// Raw reads and writes under TLS, as the HTTP layer's mesh connections
	// (no splice is possible through TLS anyway).
	tc := tls.Client(rawio.Wrap(raw), meshtls.ClientConfig(p.cfg.Source, peer, meshtls.ALPNOpaque))
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, false, reasonUpstreamTLS, err
	}
	return tc, true, "", nil
}
