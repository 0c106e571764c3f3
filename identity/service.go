package identity

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/meshlet/meshlet/identity/api/identitypb"
)

// Authenticator turns a token into the identity it proves. Errors wrap one
// of the token sentinels (ErrInvalidToken, ErrWrongAudience, ...).
type Authenticator interface {
	Authenticate(ctx context.Context, token []byte) (spiffeid.ID, error)
}

// IssuerSource returns the issuer to sign with; IssuerWatcher implements it.
type IssuerSource interface {
	Current() *Issuer
}

// ServiceConfig is what the Certify handler needs.
type ServiceConfig struct {
	TrustDomain   spiffeid.TrustDomain
	Authenticator Authenticator
	Issuer        IssuerSource
	Metrics       *Metrics
	Log           *slog.Logger
	// Lifetime of issued certificates; 0 means DefaultLifetime.
	Lifetime time.Duration
	// Backdate of NotBefore for clock skew; 0 means DefaultBackdate, a
	// negative value means none.
	Backdate time.Duration
}

const (
	// DefaultLifetime of a proxy certificate; proxies renew at about 70%.
	DefaultLifetime = 24 * time.Hour
	// DefaultBackdate is how far NotBefore is moved into the past, so a peer
	// whose clock is up to this much behind accepts a fresh certificate.
	DefaultBackdate = time.Minute
)

// effectiveBackdate applies the convention of the Backdate settings: 0 is
// the default, negative is none.
func effectiveBackdate(d time.Duration) time.Duration {
	switch {
	case d == 0:
		return DefaultBackdate
	case d < 0:
		return 0
	}
	return d
}

// Service implements identitypb.IdentityServer.
type Service struct {
	identitypb.UnimplementedIdentityServer
	cfg ServiceConfig
}

// NewService checks cfg and returns the handler.
func NewService(cfg ServiceConfig) (*Service, error) {
	switch {
	case cfg.TrustDomain.IsZero():
		return nil, fmt.Errorf("identity: service: trust domain is required")
	case cfg.Authenticator == nil:
		return nil, fmt.Errorf("identity: service: authenticator is required")
	case cfg.Issuer == nil:
		return nil, fmt.Errorf("identity: service: issuer is required")
	case cfg.Metrics == nil:
		return nil, fmt.Errorf("identity: service: metrics are required")
	}
	if cfg.Lifetime == 0 {
		cfg.Lifetime = DefaultLifetime
	}
	cfg.Backdate = effectiveBackdate(cfg.Backdate)
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg}, nil
}

// Certify implements identitypb.IdentityServer. Every outcome is counted:
// issued, or refused with the reason Classify gives.
func (s *Service) Certify(ctx context.Context, req *identitypb.CertifyRequest) (*identitypb.CertifyResponse, error) {
	start := time.Now()
	resp, id, err := s.certify(ctx, req)
	s.cfg.Metrics.duration.Observe(time.Since(start).Seconds())
	if err != nil {
		code, reason := Classify(err)
		s.cfg.Metrics.refused.WithLabelValues(reason).Inc()
		s.cfg.Log.Warn("identity: certify refused", "reason", reason, "identity", req.GetIdentity(), "error", err)
		return nil, status.Error(code, err.Error())
	}
	s.cfg.Metrics.issued.Inc()
	s.cfg.Log.Debug("identity: certificate issued", "identity", id.String(), "valid_until", resp.GetValidUntil().AsTime())
	return resp, nil
}

// certify does the checks cheapest first, so garbage costs no API call: the
// request, the identity asked for, the CSR, then the token.
func (s *Service) certify(ctx context.Context, req *identitypb.CertifyRequest) (*identitypb.CertifyResponse, spiffeid.ID, error) {
	switch {
	case len(req.GetToken()) == 0:
		return nil, spiffeid.ID{}, fmt.Errorf("%w: token is empty", ErrBadRequest)
	case len(req.GetToken()) > MaxTokenSize:
		return nil, spiffeid.ID{}, fmt.Errorf("%w: token is %d bytes, more than %d", ErrBadRequest, len(req.GetToken()), MaxTokenSize)
	case req.GetIdentity() == "":
		return nil, spiffeid.ID{}, fmt.Errorf("%w: identity is empty", ErrBadRequest)
	}
	want, err := spiffeid.FromString(req.GetIdentity())
	if err != nil {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: %q: %w", ErrInvalidIdentity, req.GetIdentity(), err)
	}
	if !want.MemberOf(s.cfg.TrustDomain) {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: %s is not in trust domain %s", ErrInvalidIdentity, want, s.cfg.TrustDomain)
	}
	csr, err := ValidateCSR(req.GetCsrDer(), want)
	if err != nil {
		return nil, spiffeid.ID{}, err
	}
	got, err := s.cfg.Authenticator.Authenticate(ctx, req.GetToken())
	if err != nil {
		return nil, spiffeid.ID{}, err
	}
	if got != want {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: token is for %s, request asks for %s", ErrIdentityMismatch, got, want)
	}
	is := s.cfg.Issuer.Current()
	if is == nil {
		return nil, spiffeid.ID{}, fmt.Errorf("%w: none loaded", ErrIssuerUnavailable)
	}
	leaf, err := is.Sign(csr, want, SignOptions{Lifetime: s.cfg.Lifetime, Backdate: s.cfg.Backdate})
	if err != nil {
		return nil, spiffeid.ID{}, err
	}
	resp := &identitypb.CertifyResponse{
		LeafCertificateDer: leaf.Raw,
		ValidUntil:         timestamppb.New(leaf.NotAfter),
	}
	for _, c := range is.Chain() {
		resp.IntermediatesDer = append(resp.IntermediatesDer, c.Raw)
	}
	return resp, want, nil
}
