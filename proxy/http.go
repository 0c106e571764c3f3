package proxy

import (
	"context"
	"log/slog"
	"net"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlet/meshlet/proxy/balance"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

// HTTPServer is the HTTP layer (proxy/httpproxy) as the listeners see it.
type HTTPServer interface {
	// ServeConn serves HTTP on c, which detection (or ALPN) found to speak
	// info.Protocol, until the client closes it or ctx ends; once ctx ends
	// it lets in-flight requests finish, then returns. It closes c.
	ServeConn(ctx context.Context, c net.Conn, info ConnInfo)
	// Close cuts whatever ServeConn calls are still draining and releases
	// pooled upstream connections.
	Close() error
}

// HTTPDeps is what Run shares with the HTTP layer it builds.
type HTTPDeps struct {
	// Config is the proxy's configuration (timeouts, inbound target).
	Config *Config
	// Registry receives the HTTP metrics, beside the proxy's own.
	Registry *prometheus.Registry
	// Balancers resolves authorities; shared with opaque TCP forwarding.
	Balancers *balance.Cache
	// Source is the proxy's identity; nil without one.
	Source meshtls.Source
	// Logger is the proxy's logger.
	Logger *slog.Logger
}

// Direction says which listener a connection arrived on.
type Direction uint8

const (
	// Inbound connections come from other pods and go to the application.
	Inbound Direction = iota
	// Outbound connections come from the application.
	Outbound
)

// String returns the value of the direction metric label.
func (d Direction) String() string {
	if d == Outbound {
		return "outbound"
	}
	return "inbound"
}

// HTTPVersion is the HTTP version detected or negotiated on a connection.
type HTTPVersion uint8

const (
	// HTTP1 is HTTP/1.0 or HTTP/1.1.
	HTTP1 HTTPVersion = iota
	// HTTP2 is HTTP/2, by prior knowledge (h2c) or ALPN "h2".
	HTTP2
)

// ConnInfo is what the listeners learnt about a connection before handing
// it to the HTTP layer.
type ConnInfo struct {
	// Direction is the listener the connection arrived on.
	Direction Direction
	// Protocol is the detected (plaintext) or ALPN-negotiated (mTLS) version.
	Protocol HTTPVersion
	// OrigDst is the original destination from SO_ORIGINAL_DST. It is the
	// zero (invalid) AddrPort when the connection was not redirected (it
	// was made to the listener itself): then outbound requests are routed
	// by Host alone, and inbound ones go to Target.
	OrigDst netip.AddrPort
	// Target is where inbound requests go: Config.InboundTarget, or
	// 127.0.0.1:<OrigDst port>. Empty for outbound connections.
	Target string
	// PeerID is the verified SPIFFE ID of an mTLS peer; "" in plaintext.
	PeerID string
	// TLS reports whether the proxy terminated mTLS on this connection.
	TLS bool
}
