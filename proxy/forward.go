package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"

	"github.com/meshlet/meshlet/proxy/detect"
	"github.com/meshlet/meshlet/proxy/origdst"
	"github.com/meshlet/meshlet/proxy/tcp"
)

// origDst returns the connection's original destination and whether it
// was redirected at all (a direct connection to the listener was not).
func (p *Proxy) origDst(c *net.TCPConn) (netip.AddrPort, bool) {
	dst, err := origdst.Get(c)
	if err != nil {
		if !errors.Is(err, origdst.ErrNotRedirected) {
			p.log.Debug("reading the original destination failed", "err", err)
		}
		return netip.AddrPort{}, false
	}
	return dst, true
}

// detect peeks at the first bytes of c and counts the outcome. It returns
// nil (having closed c) when the client went away during detection.
func (p *Proxy) detect(c *net.TCPConn, d Direction) (*detect.Conn, detect.Result) {
	dc, res, err := detect.Detect(c, p.cfg.DetectTimeout)
	if err != nil {
		c.Close()
		if !errors.Is(err, detect.ErrClosed) {
			p.m.refuse(d, reasonDetectFailed)
			p.log.Debug("protocol detection failed", "direction", d.String(), "err", err)
		}
		return nil, detect.Result{}
	}
	if res.TimedOut {
		bytes := "partial"
		if res.Bytes == 0 {
			bytes = "none"
		}
		p.m.detectTimeouts.WithLabelValues(d.String(), bytes).Inc()
	}
	label := res.Protocol.String()
	if p.isAppTLS(d, res) {
		label = "tls_passthrough"
	}
	p.m.detect.WithLabelValues(d.String(), label).Inc()
	return dc, res
}

// forward copies between the client and upstream connections until both
// ends are done, and records the TCP golden metrics.
func (p *Proxy) forward(client, upstream net.Conn, l tcpLabels) {
	p.m.tcpOpen.WithLabelValues(l[:]...).Inc()
	open := p.m.tcpOpenActive.WithLabelValues(l[:]...)
	open.Inc()
	st, err := tcp.Forward(p.hardCtx, client, upstream)
	open.Dec()
	p.m.tcpRead.WithLabelValues(l[:]...).Add(float64(st.FromClient))
	p.m.tcpWrite.WithLabelValues(l[:]...).Add(float64(st.ToClient))
	cause := ""
	switch {
	case err == nil:
	case p.hardCtx.Err() != nil:
		cause = "shutdown"
	default:
		cause = "reset"
	}
	p.m.tcpClose.WithLabelValues(append(l[:], cause)...).Inc()
	if err != nil && cause != "shutdown" && p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug("tcp connection ended with an error", "direction", l[0], "authority", l[1], "err", err,
			"from_client", st.FromClient, "to_client", st.ToClient)
	}
}

// dialTCP connects to addr within the connect timeout (or until the hard
// stop).
func (p *Proxy) dialTCP(ctx context.Context, addr string) (*net.TCPConn, error) {
	c, err := p.dialer.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// isAppTLS reports whether an inbound ClientHello is the application's own
// TLS rather than a mesh peer's: mesh peers send no SNI
// (meshtls.ClientConfig sets no ServerName), clients of a TLS application
// name its host. Without an identity every ClientHello is the
// application's: there is no mTLS to terminate.
func (p *Proxy) isAppTLS(d Direction, res detect.Result) bool {
	return d == Inbound && res.Protocol == detect.TLS &&
		(p.serverTLS == nil || (res.HelloParsed && res.ServerName != ""))
}
