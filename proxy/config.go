// Package proxy is meshlet-proxy: the listeners (outbound, inbound, admin),
// protocol detection, opaque TCP forwarding, mTLS between proxies, metrics
// and graceful shutdown. The HTTP layer (proxy/httpproxy) serves the
// connections detection hands it; Run wires everything together.
package proxy

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/capture"
	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

// DefaultOpaquePorts are the ports of well-known server-speaks-first or
// binary protocols (SMTP, submission, MySQL, Galera, PostgreSQL, Redis,
// Elasticsearch transport, Memcached): detection is skipped on them, as in
// Linkerd's default.
const DefaultOpaquePorts = "25,587,3306,4444,5432,6379,9300,11211"

// Config configures the proxy. Every exported setting of a basic type has
// an environment variable MESHLET_PROXY_<NAME> and a flag --<name> (see
// RegisterFlags); each field's comment is its documentation, copied to
// docs/proxy.md. Start from DefaultConfig.
type Config struct {
	// OutboundAddr is where connections from the application, redirected
	// by iptables, arrive. Default 127.0.0.1:4140.
	OutboundAddr string
	// InboundAddr is where connections to the application, redirected by
	// iptables, arrive. Default 0.0.0.0:4143.
	InboundAddr string
	// AdminAddr serves /metrics, /ready and /live. Default 0.0.0.0:4191.
	AdminAddr string
	// IPv6 also listens on the IPv6 counterparts of the outbound and
	// inbound addresses ([::1] for 127.0.0.1, [::] for 0.0.0.0, same
	// port), so that the IPv6 connections ip6tables redirects in a
	// dual-stack pod are served. Skipped, with a log line, when the host
	// has no IPv6. Default true.
	IPv6 bool

	// InboundTarget, when set, is the host:port every inbound connection
	// is forwarded to (meshctl dev, where nothing is redirected). Default
	// "": 127.0.0.1:<the connection's original destination port>.
	InboundTarget string
	// OutboundFallback is the authority (host:port) an outbound opaque
	// connection goes to when it was not redirected, so it has no original
	// destination. Default "": such connections are refused (logged and
	// counted). HTTP connections do not need it: they are routed by Host.
	OutboundFallback string
	// InboundStrict refuses inbound plaintext: only mTLS from mesh peers is
	// accepted. Default false (permissive: plaintext is detected and
	// served too, for unmeshed clients and kubelet probes).
	InboundStrict bool
	// OpaquePorts are original-destination ports forwarded as opaque TCP
	// without protocol detection: server-speaks-first protocols must be
	// listed, or they wait DetectTimeout before their first byte. Comma-
	// separated ports and ranges. Default DefaultOpaquePorts.
	OpaquePorts capture.Ports

	// DetectTimeout bounds the wait for a client's first bytes. When it
	// passes with nothing read the connection is forwarded as opaque TCP
	// (a server-speaks-first protocol on an unlisted port). Default 1s.
	DetectTimeout time.Duration
	// ConnectTimeout bounds the wait for an authority's first resolution,
	// and separately the TCP connect plus mTLS handshake to an endpoint
	// (and an inbound peer's mTLS handshake). Default 1s.
	ConnectTimeout time.Duration
	// RequestTimeout bounds each HTTP request from its headers to the
	// response's headers (504 when it passes); bodies may stream longer.
	// Default 0: no limit.
	RequestTimeout time.Duration
	// ShutdownGrace is how long, after SIGTERM, in-flight requests and open
	// connections may take to finish before they are closed. Default 30s.
	ShutdownGrace time.Duration
	// LogLevel is debug, info, warn or error. Default info.
	LogLevel string
	// AdminPprof serves Go's profiler at /debug/pprof/ on the admin
	// listener. Default false.
	AdminPprof bool
	// Cores is how many CPU cores meshlet-proxy runs its Go code on at once
	// (GOMAXPROCS; it overrides that variable). A sidecar shares its pod's
	// CPU with the application, and one core carries several thousand
	// requests per second with the least scheduling overhead, as in
	// Linkerd's default. The injector sets it from the proxy's CPU limit
	// (rounded up) when there is one. 0: one per CPU the container may use
	// (Go's default). Default 1.
	Cores int

	// DestinationAddr is meshlet-destination's host:port. Default "": no
	// service discovery; every destination is forwarded to as addressed.
	DestinationAddr string
	// IdentityAddr is meshlet-identity's host:port. Default "": no
	// identity, so no mTLS (inbound TLS is refused).
	IdentityAddr string
	// IdentityTokenFile is the token presented to meshlet-identity.
	// Default /var/run/meshlet/tokens/identity-token.
	IdentityTokenFile string
	// IdentityServerID is meshlet-identity's own SPIFFE ID. When set, the
	// proxy speaks TLS to it and checks its certificate against the trust
	// anchors before sending its token, so the token never crosses the
	// network in the clear. Default "": plaintext gRPC (only for setups
	// where the network is trusted).
	IdentityServerID string
	// TrustAnchors is the PEM of the mesh's trust anchors, inline.
	TrustAnchors string
	// TrustAnchorsFile is a file holding the PEM of the trust anchors,
	// read when TrustAnchors is empty.
	TrustAnchorsFile string
	// Identity is this proxy's SPIFFE ID, as the injector derived it.
	Identity string
	// PodName and PodNamespace come from the downward API; the namespace
	// lets short names ("svc:port") resolve.
	PodName, PodNamespace string
	// ServiceAccount is the pod's ServiceAccount (downward API). The
	// injector composes Identity from it; the proxy only logs it.
	ServiceAccount string

	// Resolver supplies endpoints for outbound authorities. nil: none is
	// known, so every connection goes to its original destination.
	Resolver endpoint.Resolver `flag:"-"`
	// Source is this proxy's identity (SVID and trust bundle). nil: no
	// identity, so no mTLS; inbound TLS is refused and meshed endpoints are
	// reached in plaintext. /ready waits until Source has an SVID.
	Source meshtls.Source `flag:"-"`
	// NewHTTP builds the HTTP layer once Run has its registry and balancer
	// cache. DefaultConfig sets NewHTTPProxy (proxy/httpproxy). nil: HTTP
	// connections are forwarded as opaque TCP.
	NewHTTP func(HTTPDeps) (HTTPServer, error) `flag:"-"`
	// Registry receives every metric. nil: Run creates one.
	Registry *prometheus.Registry `flag:"-"`
	// Logger receives the proxy's logs. nil: a text logger on stderr at
	// LogLevel.
	Logger *slog.Logger `flag:"-"`
}

// DefaultConfig returns the documented defaults.
func DefaultConfig() Config {
	ports, err := capture.ParsePorts(DefaultOpaquePorts)
	if err != nil {
		panic(err) // a constant
	}
	return Config{
		OutboundAddr:      "127.0.0.1:4140",
		InboundAddr:       "0.0.0.0:4143",
		AdminAddr:         "0.0.0.0:4191",
		IPv6:              true,
		OpaquePorts:       ports,
		DetectTimeout:     time.Second,
		ConnectTimeout:    time.Second,
		ShutdownGrace:     30 * time.Second,
		LogLevel:          "info",
		Cores:             1,
		IdentityTokenFile: "/var/run/meshlet/tokens/identity-token",
		NewHTTP:           NewHTTPProxy,
	}
}

// Validate reports every setting out of range, naming it.
func (c *Config) Validate() error {
	var errs []error
	for name, a := range map[string]string{"outbound-addr": c.OutboundAddr, "inbound-addr": c.InboundAddr, "admin-addr": c.AdminAddr} {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("proxy: %s %q: %w", name, a, err))
		}
	}
	for name, a := range map[string]string{"inbound-target": c.InboundTarget, "outbound-fallback": c.OutboundFallback,
		"destination-addr": c.DestinationAddr, "identity-addr": c.IdentityAddr} {
		if a == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("proxy: %s %q is not host:port: %w", name, a, err))
		}
	}
	for name, d := range map[string]time.Duration{"detect-timeout": c.DetectTimeout, "connect-timeout": c.ConnectTimeout} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("proxy: %s %v must be positive", name, d))
		}
	}
	for name, d := range map[string]time.Duration{"shutdown-grace": c.ShutdownGrace, "request-timeout": c.RequestTimeout} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("proxy: %s %v must not be negative", name, d))
		}
	}
	if c.Cores < 0 {
		errs = append(errs, fmt.Errorf("proxy: cores %d must not be negative (0: one per CPU)", c.Cores))
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	if c.Identity != "" {
		if _, err := spiffeid.FromString(c.Identity); err != nil {
			errs = append(errs, fmt.Errorf("proxy: identity %q: %w", c.Identity, err))
		}
	}
	return errors.Join(errs...)
}

func parseLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("proxy: log-level %q: want debug, info, warn or error", s)
}

// inboundTarget returns where an inbound connection to dst goes: the fixed
// target if configured, else the application on loopback at dst's port.
func (c *Config) inboundTarget(dst netip.AddrPort) string {
	if c.InboundTarget != "" {
		return c.InboundTarget
	}
	return netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), dst.Port()).String()
}
