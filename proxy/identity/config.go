package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
)

// Config is the proxy's identity settings (MESHLET_PROXY_IDENTITY_*).
type Config struct {
	// Addr is host:port of meshlet-identity (MESHLET_PROXY_IDENTITY_ADDR).
	Addr string
	// Identity is this proxy's SPIFFE ID (MESHLET_PROXY_IDENTITY).
	Identity spiffeid.ID
	// ServerIdentity, when set, makes the client speak TLS to
	// meshlet-identity and accept only a server certificate for exactly
	// this SPIFFE ID chaining to TrustAnchorsPEM (meshlet-identity -tls),
	// so the token is never sent to anyone else. When zero the connection is
	// plaintext (MESHLET_PROXY_IDENTITY_SERVER_ID; proposed).
	ServerIdentity spiffeid.ID
	// TokenFile holds the token presented to meshlet-identity: the projected
	// ServiceAccount token, or a join token. It is read again before every
	// request because the kubelet rotates projected tokens.
	TokenFile string
	// TrustAnchorsPEM are the trust anchors of Identity's trust domain
	// (MESHLET_PROXY_TRUST_ANCHORS or the content of _TRUST_ANCHORS_FILE).
	TrustAnchorsPEM []byte
	// RenewFraction of a certificate's remaining lifetime after which it is
	// renewed; 0 means 0.7. A random ±0.05 spreads renewals of proxies that
	// started together.
	RenewFraction float64
	// MinBackoff and MaxBackoff bound the wait before retrying a failed
	// request (doubling from Min, with jitter); 0 means 500ms and 30s. While
	// a certificate is held, the wait is also kept under a quarter of its
	// remaining life.
	MinBackoff, MaxBackoff time.Duration
	// RequestTimeout bounds one Certify call; 0 means 30s (a fleet renewing
	// at once queues behind meshlet-identity's TokenReview rate limit).
	RequestTimeout time.Duration
	// Registry receives the metrics; required.
	Registry prometheus.Registerer
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
	// DialOptions are added to the gRPC client's (tests, custom transports).
	DialOptions []grpc.DialOption
}

func (c *Config) setDefaults() {
	if c.RenewFraction == 0 {
		c.RenewFraction = 0.7
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 500 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Validate reports every problem of the configuration at once.
func (c *Config) Validate() error {
	var errs []error
	if c.Addr == "" {
		errs = append(errs, errors.New("identity service address is required"))
	}
	if c.Identity.IsZero() {
		errs = append(errs, errors.New("identity (SPIFFE ID) is required"))
	}
	if !c.ServerIdentity.IsZero() && !c.Identity.IsZero() && !c.ServerIdentity.MemberOf(c.Identity.TrustDomain()) {
		errs = append(errs, fmt.Errorf("server identity %s is not in the proxy's trust domain %s", c.ServerIdentity, c.Identity.TrustDomain()))
	}
	if c.TokenFile == "" {
		errs = append(errs, errors.New("token file is required"))
	}
	if len(c.TrustAnchorsPEM) == 0 {
		errs = append(errs, errors.New("trust anchors are required"))
	}
	if c.RenewFraction <= 0.1 || c.RenewFraction >= 0.95 {
		errs = append(errs, fmt.Errorf("renew fraction %v: want between 0.1 and 0.95", c.RenewFraction))
	}
	if c.MinBackoff <= 0 || c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("backoff %s..%s: want 0 < min <= max", c.MinBackoff, c.MaxBackoff))
	}
	if c.Registry == nil {
		errs = append(errs, errors.New("metrics registry is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("identity: config: %w", err)
	}
	return nil
}
