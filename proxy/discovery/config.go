// Package discovery is the proxy's client of meshlet-destination: an
// endpoint.Resolver that follows each authority in use over one gRPC stream,
// shared by all of that authority's watchers.
//
// While the control plane is unreachable every authority keeps its last
// known set (no update is issued); when a stream comes back, its first
// message is the complete state and replaces what was known.
package discovery

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// Defaults used for zero Config fields.
const (
	DefaultMinBackoff  = 100 * time.Millisecond
	DefaultMaxBackoff  = 10 * time.Second
	DefaultIdleTimeout = 10 * time.Second
)

// Config configures a Client.
type Config struct {
	// Addr is meshlet-destination's host:port (MESHLET_PROXY_DESTINATION_ADDR).
	// Required.
	Addr string
	// ContextNamespace is the proxy's namespace (MESHLET_PROXY_POD_NAMESPACE);
	// it lets "svc:port" resolve. Empty means short names do not resolve.
	ContextNamespace string
	// DialOptions are added to the gRPC connection's options. nil means
	// plaintext (insecure credentials); pass transport credentials for TLS.
	DialOptions []grpc.DialOption
	// MinBackoff and MaxBackoff bound the jittered exponential delay between
	// attempts to re-open a failed stream. 0 means DefaultMinBackoff /
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// IdleTimeout is how long a stream stays open after its last watcher
	// stopped, so a watcher that comes back soon finds it warm. 0 means
	// DefaultIdleTimeout; a negative value closes it at once.
	IdleTimeout time.Duration
	// Registry receives the client's metrics; nil means a private registry.
	Registry prometheus.Registerer
	// Logger receives stream errors; nil means slog.Default().
	Logger *slog.Logger
}

// Validate reports a missing or inconsistent field.
func (c *Config) Validate() error {
	if c.Addr == "" {
		return errors.New("discovery: Config.Addr is required")
	}
	if c.MinBackoff < 0 || c.MaxBackoff < 0 {
		return errors.New("discovery: backoff must not be negative")
	}
	if c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff {
		return errors.New("discovery: MinBackoff is larger than MaxBackoff")
	}
	return nil
}

func (c *Config) withDefaults() Config {
	out := *c
	if out.MinBackoff == 0 {
		out.MinBackoff = DefaultMinBackoff
	}
	if out.MaxBackoff == 0 {
		out.MaxBackoff = max(DefaultMaxBackoff, out.MinBackoff)
	}
	if out.IdleTimeout == 0 {
		out.IdleTimeout = DefaultIdleTimeout
	}
	if out.Registry == nil {
		out.Registry = prometheus.NewRegistry()
	}
	if out.Logger == nil {
		out.Logger = slog.Default()
	}
	return out
}
