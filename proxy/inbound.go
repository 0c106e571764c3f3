package proxy

import (
	"context"
	"crypto/tls"
	"net"
	"net/netip"
	"strconv"

	"github.com/meshlet/meshlet/proxy/detect"
	"github.com/meshlet/meshlet/proxy/httpproxy"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

// inbound serves a connection to the application: mTLS from a mesh peer
// (terminated here, then HTTP or opaque by ALPN), or plaintext (detected
// and served, unless strict).
func (p *Proxy) inbound(c *net.TCPConn) {
	active := p.m.activeByDir[Inbound]
	active.Inc()
	defer active.Dec()

	dst, redirected := p.origDst(c)
	if !redirected && p.cfg.InboundTarget == "" {
		// Without a target, 127.0.0.1:<port> would be this listener again.
		c.Close()
		p.warnRefused(Inbound, reasonNoOrigDst,
			"refusing an inbound connection that was not redirected (set MESHLET_PROXY_INBOUND_TARGET to serve direct connections)",
			"client", c.RemoteAddr().String())
		return
	}
	target := p.cfg.inboundTarget(dst)
	if p.ownAddr(target) {
		c.Close()
		p.warnRefused(Inbound, reasonLoop, "refusing to forward an inbound connection to the proxy's own listener", "target", target)
		return
	}
	// The application's port decides: the original one, or the fixed
	// target's when nothing was redirected (meshctl dev).
	appPort := dst.Port()
	if !redirected {
		if _, port, err := net.SplitHostPort(target); err == nil {
			if n, err := strconv.ParseUint(port, 10, 16); err == nil {
				appPort = uint16(n)
			}
		}
	}
	opaquePort := appPort != 0 && p.cfg.OpaquePorts.Contains(appPort)

	// An opaque port on a proxy without identity has nothing to detect:
	// no mTLS can be terminated and HTTP is not looked at.
	if opaquePort && p.serverTLS == nil && !p.cfg.InboundStrict {
		p.m.detect.WithLabelValues("inbound", "skipped").Inc()
		p.inboundTCP(detect.Wrap(c), target, false, "")
		return
	}
	// Otherwise peek even on opaque ports: a mesh peer opens with a TLS
	// ClientHello at once, so only plaintext server-speaks-first clients
	// wait for the detection timeout.
	dc, res := p.detect(c, Inbound)
	if dc == nil {
		return
	}
	proto := res.Protocol
	if proto == detect.TLS {
		if p.isAppTLS(Inbound, res) {
			// The application's own TLS: passed through untouched, since
			// it is not mesh mTLS (strict mode accepts only that).
			if p.cfg.InboundStrict {
				dc.Close()
				reason := reasonForeignTLS
				if p.serverTLS == nil {
					reason = reasonNoIdentity
				}
				p.warnRefused(Inbound, reason, "refusing TLS that is not mesh mTLS in strict mode", "sni", res.ServerName)
				return
			}
			p.inboundTCP(dc, target, false, "")
			return
		}
		p.inboundTLS(dc, dst, redirected, target)
		return
	}
	if p.cfg.InboundStrict {
		dc.Close()
		p.warnRefused(Inbound, reasonPlaintext, "refusing inbound plaintext in strict mode", "client", dc.RemoteAddr().String())
		return
	}
	if !opaquePort && p.http != nil && (proto == detect.HTTP1 || proto == detect.HTTP2) {
		info := httpproxy.ConnInfo{Direction: Inbound, Protocol: httpproxy.HTTP1}
		if proto == detect.HTTP2 {
			info.Protocol = httpproxy.HTTP2
		}
		if redirected {
			info.OrigDst = dst
		}
		p.http.ServeConn(p.drainCtx, dc, info)
		return
	}
	p.inboundTCP(dc, target, false, "")
}

// inboundTLS terminates mTLS from a mesh peer and serves what its ALPN
// names: HTTP (h2, http/1.1) in the HTTP layer, or an opaque stream.
// An HTTP ALPN is served as HTTP even on an opaque port: the peer already
// framed the application's requests as HTTP.
func (p *Proxy) inboundTLS(dc *detect.Conn, dst netip.AddrPort, redirected bool, target string) {
	tc := tls.Server(dc, p.serverTLS)
	ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.ConnectTimeout)
	err := tc.HandshakeContext(ctx)
	cancel()
	if err != nil {
		tc.Close()
		p.warnRefused(Inbound, reasonHandshake, "inbound mTLS handshake failed", "client", dc.RemoteAddr().String(), "err", err)
		return
	}
	cs := tc.ConnectionState()
	peer, _ := meshtls.PeerID(cs)
	peerID := peer.String()
	switch alpn := cs.NegotiatedProtocol; {
	case alpn == meshtls.ALPNOpaque || alpn == "":
		p.inboundTCP(tc, target, true, peerID)
	case (alpn == meshtls.ALPNHTTP2 || alpn == meshtls.ALPNHTTP1) && p.http != nil:
		info := httpproxy.ConnInfo{Direction: Inbound, Protocol: httpproxy.HTTP1, PeerID: peerID, TLS: true}
		if alpn == meshtls.ALPNHTTP2 {
			info.Protocol = httpproxy.HTTP2
		}
		if redirected {
			info.OrigDst = dst
		}
		p.http.ServeConn(p.drainCtx, tc, info)
	default:
		// The peer's HTTP/2 is the proxies' own framing, not the
		// application's protocol: it cannot be forwarded as bytes.
		tc.Close()
		p.warnRefused(Inbound, reasonALPN, "refusing an mTLS connection whose protocol this proxy does not serve here",
			"alpn", alpn, "peer", peerID)
	}
}

// inboundTCP forwards an opaque inbound stream to the application.
func (p *Proxy) inboundTCP(client net.Conn, target string, viaTLS bool, peerID string) {
	ctx, cancel := context.WithTimeout(p.hardCtx, p.cfg.ConnectTimeout)
	upstream, err := p.dialTCP(ctx, target)
	cancel()
	if err != nil {
		client.Close()
		p.m.connectErrors.WithLabelValues("inbound", reasonConnect).Inc()
		p.warnRefused(Inbound, reasonConnect, "connecting to the application failed", "target", target, "err", err)
		return
	}
	p.forward(client, upstream, newTCPLabels(Inbound, target, viaTLS, peerID, nil))
}
