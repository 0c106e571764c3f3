package proxy

import (
	"context"
	"log/slog"
	"net"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/meshlet/meshlet/proxy/balance"
	"github.com/meshlet/meshlet/proxy/httpproxy"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

// HTTPServer is the HTTP layer (proxy/httpproxy) as the listeners see it.
type HTTPServer interface {
	// ServeConn serves HTTP on c, which detection (or ALPN) found to speak
	// info.Protocol, until the client closes it or ctx ends; once ctx ends
	// it lets in-flight requests finish, then returns. It closes c.
	ServeConn(ctx context.Context, c net.Conn, info httpproxy.ConnInfo)
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

// Direction says which listener a connection arrived on; the HTTP layer's
// type, so ConnInfo passes through unchanged.
type Direction = httpproxy.Direction

// Directions.
const (
	Inbound  = httpproxy.Inbound
	Outbound = httpproxy.Outbound
)

// NewHTTPProxy is Config.NewHTTP for the HTTP layer, proxy/httpproxy.
// Shutdown: ServeConn's ctx ends when the drain starts (in-flight requests
// finish; the drain is bounded by ShutdownGrace), and Close at the end of
// the grace period cuts what is left.
func NewHTTPProxy(d HTTPDeps) (HTTPServer, error) {
	return httpproxy.New(httpproxy.Config{
		Balancers:      d.Balancers,
		Identity:       d.Source,
		InboundTarget:  d.Config.InboundTarget,
		ConnectTimeout: d.Config.ConnectTimeout,
		RequestTimeout: d.Config.RequestTimeout,
		DrainTimeout:   d.Config.ShutdownGrace,
		Registry:       d.Registry,
		Logger:         d.Logger,
	})
}
