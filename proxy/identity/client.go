// Package identity is the proxy's side of meshlet-identity: it keeps a
// private key in memory, obtains and renews the proxy's SPIFFE X.509 SVID
// with Certify, and serves the SVID and trust bundle to TLS configurations
// (it implements meshtls.Source).
package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	"github.com/meshlet/meshlet/internal/pemutil"
)

// ErrNoCertificate is returned by GetX509SVID before the first certificate
// arrives.
var ErrNoCertificate = errors.New("identity: no certificate yet")

// Client obtains and renews the proxy's certificate. Its Source methods are
// safe for concurrent use and cheap (one atomic load), since TLS calls them
// on every handshake.
type Client struct {
	cfg     Config
	key     *ecdsa.PrivateKey
	csr     []byte
	bundle  *x509bundle.Bundle
	metrics *metrics

	svid      atomic.Pointer[x509svid.SVID]
	ready     chan struct{}
	readyOnce sync.Once
	// lastErr is the latest renewal error, reported by GetX509SVID once the
	// certificate has expired; nil after a success.
	lastErr atomic.Pointer[error]
}

// New generates the proxy's P-256 key (in memory only; it is never written
// anywhere) and the CSR for cfg.Identity, and parses the trust anchors.
// Nothing is requested until Run.
func New(cfg Config) (*Client, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	anchors, err := pemutil.Certificates(cfg.TrustAnchorsPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: trust anchors: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: generate key: %w", err)
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		URIs: []*url.URL{cfg.Identity.URL()},
	}, key)
	if err != nil {
		return nil, fmt.Errorf("identity: create csr: %w", err)
	}
	return &Client{
		cfg:     cfg,
		key:     key,
		csr:     csr,
		bundle:  x509bundle.FromX509Authorities(cfg.Identity.TrustDomain(), anchors),
		metrics: newMetrics(cfg.Registry),
		ready:   make(chan struct{}),
	}, nil
}

// ID is the proxy's SPIFFE ID.
func (c *Client) ID() spiffeid.ID { return c.cfg.Identity }

// Ready is closed when the first certificate has arrived; until then the
// proxy reports not ready.
func (c *Client) Ready() <-chan struct{} { return c.ready }

// GetX509SVID returns the current SVID (x509svid.Source). It fails before
// the first certificate and after the current one has expired, saying why
// renewal has not replaced it.
func (c *Client) GetX509SVID() (*x509svid.SVID, error) {
	s := c.svid.Load()
	if s == nil {
		return nil, ErrNoCertificate
	}
	if exp := s.Certificates[0].NotAfter; time.Now().After(exp) {
		var last error
		if p := c.lastErr.Load(); p != nil {
			last = *p
		}
		return nil, fmt.Errorf("identity: certificate expired at %s; last renewal error: %v", exp.UTC().Format(time.RFC3339), last)
	}
	return s, nil
}

// GetX509BundleForTrustDomain returns the trust anchors
// (x509bundle.Source). Only the proxy's own trust domain is known.
func (c *Client) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	if td != c.bundle.TrustDomain() {
		return nil, fmt.Errorf("identity: no trust bundle for trust domain %q", td)
	}
	return c.bundle, nil
}
