// Package meshtlstest mints real SPIFFE certificates for tests: a root CA
// per test and SVIDs signed by it, wrapped as meshtls.Source values.
package meshtlstest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/url"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// CA is a test trust anchor that signs SVIDs directly.
type CA struct {
	TrustDomain spiffeid.TrustDomain
	Cert        *x509.Certificate
	Key         crypto.Signer
}

// NewCA creates a root CA for trustDomain, valid for a day.
func NewCA(tb testing.TB, trustDomain string) *CA {
	tb.Helper()
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		tb.Fatalf("meshtlstest: trust domain: %v", err)
	}
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(tb),
		Subject:               pkix.Name{CommonName: "meshlet test root"},
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		tb.Fatalf("meshtlstest: root: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("meshtlstest: root: %v", err)
	}
	return &CA{TrustDomain: td, Cert: cert, Key: key}
}

// Bundle returns the CA as the trust bundle of its trust domain.
func (ca *CA) Bundle() *x509bundle.Bundle {
	return x509bundle.FromX509Authorities(ca.TrustDomain, []*x509.Certificate{ca.Cert})
}

// SVID issues a leaf SVID for id valid for lifetime (a day when zero).
func (ca *CA) SVID(tb testing.TB, id string, lifetime time.Duration) *x509svid.SVID {
	tb.Helper()
	sid, err := spiffeid.FromString(id)
	if err != nil {
		tb.Fatalf("meshtlstest: id: %v", err)
	}
	if lifetime == 0 {
		lifetime = 24 * time.Hour
	}
	key := newKey(tb)
	tmpl := &x509.Certificate{
		SerialNumber: serial(tb),
		NotBefore:    time.Now().Add(-time.Minute),
		NotAfter:     time.Now().Add(lifetime),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{sid.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		tb.Fatalf("meshtlstest: leaf: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("meshtlstest: leaf: %v", err)
	}
	return &x509svid.SVID{ID: sid, Certificates: []*x509.Certificate{cert}, PrivateKey: key}
}

// Source returns a meshtls.Source holding a fresh SVID for id and the CA's
// bundle.
func (ca *CA) Source(tb testing.TB, id string) *Source {
	tb.Helper()
	s := &Source{bundle: ca.Bundle()}
	s.svid.Store(ca.SVID(tb, id, 0))
	return s
}

// Source is a meshtls.Source whose SVID can be replaced, to test rotation.
type Source struct {
	svid   atomic.Pointer[x509svid.SVID]
	bundle *x509bundle.Bundle
}

// SetSVID replaces the SVID served from the next handshake on.
func (s *Source) SetSVID(svid *x509svid.SVID) { s.svid.Store(svid) }

// GetX509SVID implements x509svid.Source.
func (s *Source) GetX509SVID() (*x509svid.SVID, error) { return s.svid.Load(), nil }

// GetX509BundleForTrustDomain implements x509bundle.Source.
func (s *Source) GetX509BundleForTrustDomain(td spiffeid.TrustDomain) (*x509bundle.Bundle, error) {
	return s.bundle.GetX509BundleForTrustDomain(td)
}

func newKey(tb testing.TB) *ecdsa.PrivateKey {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatalf("meshtlstest: key: %v", err)
	}
	return key
}

func serial(tb testing.TB) *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		tb.Fatalf("meshtlstest: serial: %v", err)
	}
	return n
}
