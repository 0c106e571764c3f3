package identity

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"k8s.io/client-go/kubernetes"
)

// Modes of authenticating proxies.
const (
	// ModeKubernetes checks projected ServiceAccount tokens with TokenReview.
	ModeKubernetes = "kubernetes"
	// ModeLocal checks join tokens from a file (meshctl dev, VMs).
	ModeLocal = "local"
)

// Config is everything meshlet-identity needs; each field's comment is its
// user documentation (flags in cmd/meshlet-identity bind to it).
type Config struct {
	// Addr is the gRPC listen address; default ":8080".
	Addr string
	// AdminAddr serves /metrics, /ready and /live; default ":9990".
	AdminAddr string
	// TrustDomain of the identities issued; default "cluster.local".
	TrustDomain string
	// Mode is ModeKubernetes (default) or ModeLocal.
	Mode string
	// Issuer names the trust anchor, issuer certificate and issuer key files.
	Issuer IssuerFiles
	// ReloadInterval is how often the issuer (and join tokens) files are
	// checked for changes; default 5s.
	ReloadInterval time.Duration
	// Lifetime of issued certificates; default 24h.
	Lifetime time.Duration
	// Backdate moves NotBefore into the past for clock skew; default 1m,
	// negative for none.
	Backdate time.Duration
	// JoinTokensFile is the join tokens file (ModeLocal only).
	JoinTokensFile string
	// Kubeconfig is the path of a kubeconfig (ModeKubernetes); "" means the
	// in-cluster configuration.
	Kubeconfig string
	// KubeQPS and KubeBurst limit the rate of TokenReview calls to the API
	// server; default 200 and 500 (DefaultKubeQPS, DefaultKubeBurst).
	KubeQPS   float32
	KubeBurst int
	// KubeClient, if set, is used instead of building one from Kubeconfig
	// (tests, embedding).
	KubeClient kubernetes.Interface
	// Audience the ServiceAccount tokens must carry; default
	// "identity.meshlet.io".
	Audience string
	// TLS serves Certify over TLS 1.3 with a certificate meshlet-identity
	// issues itself for ServerIdentity; proxies then verify it against their
	// trust anchors before sending a token. Default false (plaintext gRPC).
	TLS bool
	// ServerIdentity is the SPIFFE ID in that certificate; default
	// spiffe://<trust-domain>/ns/meshlet/sa/meshlet-identity.
	ServerIdentity string
	// Registry receives the metrics and is served on /metrics; nil means a
	// new registry with the Go and process collectors.
	Registry *prometheus.Registry
	// Log is the logger; nil means slog.Default().
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = ":8080"
	}
	if c.AdminAddr == "" {
		c.AdminAddr = ":9990"
	}
	if c.TrustDomain == "" {
		c.TrustDomain = "cluster.local"
	}
	if c.Mode == "" {
		c.Mode = ModeKubernetes
	}
	if c.ReloadInterval == 0 {
		c.ReloadInterval = DefaultReloadInterval
	}
	if c.Lifetime == 0 {
		c.Lifetime = DefaultLifetime
	}
	if c.KubeQPS == 0 {
		c.KubeQPS = DefaultKubeQPS
	}
	if c.KubeBurst == 0 {
		c.KubeBurst = DefaultKubeBurst
	}
	if c.Audience == "" {
		c.Audience = DefaultAudience
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.ServerIdentity == "" {
		c.ServerIdentity = "spiffe://" + c.TrustDomain + "/ns/meshlet/sa/meshlet-identity"
	}
}

// Validate reports every problem of the configuration at once, after
// defaults are applied.
func (c *Config) Validate() error {
	var errs []error
	td, tdErr := spiffeid.TrustDomainFromString(c.TrustDomain)
	if err := tdErr; err != nil {
		errs = append(errs, fmt.Errorf("trust domain %q: %w", c.TrustDomain, err))
	}
	switch c.Mode {
	case ModeKubernetes:
	case ModeLocal:
		if c.JoinTokensFile == "" {
			errs = append(errs, errors.New("local mode needs a join tokens file"))
		}
	default:
		errs = append(errs, fmt.Errorf("mode %q: want %q or %q", c.Mode, ModeKubernetes, ModeLocal))
	}
	if c.Issuer.AnchorsFile == "" || c.Issuer.CertFile == "" || c.Issuer.KeyFile == "" {
		errs = append(errs, errors.New("trust anchors, issuer certificate and issuer key files are all required"))
	}
	if c.TLS {
		if id, err := spiffeid.FromString(c.ServerIdentity); err != nil {
			errs = append(errs, fmt.Errorf("server identity %q: %w", c.ServerIdentity, err))
		} else if tdErr == nil && !id.MemberOf(td) {
			errs = append(errs, fmt.Errorf("server identity %s is not in trust domain %s", id, c.TrustDomain))
		}
	}
	if c.Lifetime < time.Second {
		errs = append(errs, fmt.Errorf("lifetime %s: must be at least 1s", c.Lifetime))
	}
	if c.ReloadInterval < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("reload interval %s: must be at least 100ms", c.ReloadInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("identity: config: %w", err)
	}
	return nil
}

// DefaultReloadInterval is how often the CA and join tokens files are
// polled for changes.
const DefaultReloadInterval = 5 * time.Second

// Client-side limits of TokenReview calls. A fleet renewing at once queues
// behind them (a call waits up to TokenReviewer.Timeout) instead of
// failing; the API server's own priority and fairness protect it beyond.
const (
	DefaultKubeQPS   = 200
	DefaultKubeBurst = 500
)
