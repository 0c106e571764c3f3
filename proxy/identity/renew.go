package identity

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshlet/meshlet/identity/api/identitypb"
)

// Run obtains the first certificate and renews it until ctx ends; it owns
// the gRPC connection and its one goroutine. It returns nil when ctx ends,
// or an error if the client cannot be set up at all.
func (c *Client) Run(ctx context.Context) error {
	// The proxy has no certificate yet when it first calls, so this is
	// server-authenticated TLS at most, never mutual.
	creds := insecure.NewCredentials()
	if !c.cfg.ServerIdentity.IsZero() {
		tc := tlsconfig.TLSClientConfig(c.bundle, tlsconfig.AuthorizeID(c.cfg.ServerIdentity))
		tc.MinVersion = tls.VersionTLS13
		creds = credentials.NewTLS(tc)
	}
	opts := append([]grpc.DialOption{grpc.WithTransportCredentials(creds)}, c.cfg.DialOptions...)
	conn, err := grpc.NewClient(c.cfg.Addr, opts...)
	if err != nil {
		return fmt.Errorf("identity: dial %s: %w", c.cfg.Addr, err)
	}
	defer conn.Close()
	api := identitypb.NewIdentityClient(conn)

	failures := 0
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-timer.C:
		}
		notAfter, err := c.renew(ctx, api)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.lastErr.Store(&err)
			c.metrics.failures.WithLabelValues(failureReason(err)).Inc()
			wait := c.backoff(failures)
			failures++
			c.cfg.Log.Warn("identity: certificate request failed", "error", err, "retry_in", wait, "attempt", failures)
			timer.Reset(wait)
			continue
		}
		failures = 0
		c.lastErr.Store(nil)
		wait := c.renewIn(time.Now(), notAfter)
		c.cfg.Log.Info("identity: certificate obtained", "identity", c.cfg.Identity.String(),
			"not_after", notAfter.UTC().Format(time.RFC3339), "renew_in", wait)
		timer.Reset(wait)
	}
}

// renew asks for a certificate once and installs it.
func (c *Client) renew(ctx context.Context, api identitypb.IdentityClient) (time.Time, error) {
	// Read on every request: the kubelet rotates projected tokens.
	token, err := os.ReadFile(c.cfg.TokenFile)
	if err != nil {
		return time.Time{}, &tokenFileError{err}
	}
	token = bytes.TrimSpace(token)
	if len(token) == 0 {
		return time.Time{}, &tokenFileError{fmt.Errorf("token file %s is empty", c.cfg.TokenFile)}
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	resp, err := api.Certify(ctx, &identitypb.CertifyRequest{
		Token:    token,
		CsrDer:   c.csr,
		Identity: c.cfg.Identity.String(),
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("identity: certify at %s: %w", c.cfg.Addr, err)
	}
	svid, err := c.check(resp)
	if err != nil {
		return time.Time{}, &invalidResponseError{err}
	}
	c.svid.Store(svid)
	notAfter := svid.Certificates[0].NotAfter
	c.metrics.renewals.Inc()
	c.metrics.expiry.Set(float64(notAfter.Unix()))
	c.readyOnce.Do(func() { close(c.ready) })
	return notAfter, nil
}

// check accepts a response only if it is a certificate for our key and our
// identity that chains to our trust anchors now: a misconfigured identity
// service must not make the proxy present something its peers will refuse.
func (c *Client) check(resp *identitypb.CertifyResponse) (*x509svid.SVID, error) {
	leaf, err := x509.ParseCertificate(resp.GetLeafCertificateDer())
	if err != nil {
		return nil, fmt.Errorf("leaf certificate: %w", err)
	}
	chain := []*x509.Certificate{leaf}
	for i, der := range resp.GetIntermediatesDer() {
		ic, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, fmt.Errorf("intermediate %d: %w", i, err)
		}
		chain = append(chain, ic)
	}
	if !c.key.PublicKey.Equal(leaf.PublicKey) {
		return nil, errors.New("leaf certificate is not for this proxy's key")
	}
	id, _, err := x509svid.Verify(chain, c.bundle)
	if err != nil {
		return nil, err
	}
	if id != c.cfg.Identity {
		return nil, fmt.Errorf("leaf certificate is for %s, want %s", id, c.cfg.Identity)
	}
	return &x509svid.SVID{ID: id, Certificates: chain, PrivateKey: c.key}, nil
}

// renewIn is when to renew a certificate valid until notAfter: at
// RenewFraction (±0.05, random) of its remaining life.
func (c *Client) renewIn(now, notAfter time.Time) time.Duration {
	f := c.cfg.RenewFraction + (rand.Float64()-0.5)*0.1
	d := time.Duration(float64(notAfter.Sub(now)) * f)
	if d < 0 {
		return 0
	}
	return d
}

// backoff is the wait after the n-th consecutive failure (n from 0):
// MinBackoff doubling up to MaxBackoff, then a random point in its upper
// half, so a fleet that failed together does not retry together. While a
// valid certificate is held it stays under a quarter of its remaining life,
// so that several retries fit before it expires.
func (c *Client) backoff(n int) time.Duration {
	d := c.cfg.MaxBackoff
	if n < 20 {
		d = min(c.cfg.MinBackoff<<n, c.cfg.MaxBackoff)
	}
	// Once the certificate has expired there is nothing left to save: the
	// plain exponential backoff applies, so an outage of meshlet-identity
	// does not turn into a fleet retrying every MinBackoff.
	if s := c.svid.Load(); s != nil {
		if left := time.Until(s.Certificates[0].NotAfter) / 4; left > 0 && left < d {
			d = max(left, c.cfg.MinBackoff)
		}
	}
	return d/2 + rand.N(d/2+1)
}

type tokenFileError struct{ err error }

func (e *tokenFileError) Error() string { return "identity: token file: " + e.err.Error() }
func (e *tokenFileError) Unwrap() error { return e.err }

type invalidResponseError struct{ err error }

func (e *invalidResponseError) Error() string {
	return "identity: certificate refused by the proxy: " + e.err.Error()
}
func (e *invalidResponseError) Unwrap() error { return e.err }

// failureReason is the metric label of a failed attempt.
func failureReason(err error) string {
	var tf *tokenFileError
	var ir *invalidResponseError
	switch {
	case errors.As(err, &tf):
		return "token_file"
	case errors.As(err, &ir):
		return "invalid_response"
	}
	if st, ok := status.FromError(errors.Unwrap(err)); ok {
		return snake(st.Code().String())
	}
	return "unknown"
}

// snake turns a gRPC code name (PermissionDenied) into a label value
// (permission_denied).
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}
