package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// selfLifetime is the life of the certificate meshlet-identity issues
// itself for serving Certify over TLS; it is replaced at half-life, and at
// once when the issuer changes.
const selfLifetime = 24 * time.Hour

// selfCert serves meshlet-identity's own SVID, signed by its current
// issuer, so that proxies can check with only their trust anchors that they
// send their tokens to the real identity service.
type selfCert struct {
	id       spiffeid.ID
	key      *ecdsa.PrivateKey
	issuer   IssuerSource
	backdate time.Duration

	mu  sync.Mutex // serialises re-issuing; readers use cur
	cur atomic.Pointer[selfCertEntry]
}

type selfCertEntry struct {
	cert    *tls.Certificate
	issuer  *Issuer
	renewAt time.Time
}

func newSelfCert(id spiffeid.ID, issuer IssuerSource, backdate time.Duration) (*selfCert, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("identity: server key: %w", err)
	}
	s := &selfCert{id: id, key: key, issuer: issuer, backdate: backdate}
	if _, err := s.GetCertificate(nil); err != nil {
		return nil, err
	}
	return s, nil
}

// GetCertificate is the tls.Config callback: one atomic load on the common
// path.
func (s *selfCert) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if e := s.fresh(); e != nil {
		return e.cert, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if e := s.fresh(); e != nil {
		return e.cert, nil
	}
	is := s.issuer.Current()
	if is == nil {
		return nil, fmt.Errorf("%w: none loaded", ErrIssuerUnavailable)
	}
	now := time.Now()
	leaf, err := is.Sign(&x509.CertificateRequest{PublicKey: s.key.Public()}, s.id,
		SignOptions{Lifetime: selfLifetime, Backdate: s.backdate, Now: now})
	if err != nil {
		return nil, fmt.Errorf("identity: server certificate: %w", err)
	}
	cert := &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: s.key, Leaf: leaf}
	for _, c := range is.Chain() {
		cert.Certificate = append(cert.Certificate, c.Raw)
	}
	s.cur.Store(&selfCertEntry{cert: cert, issuer: is, renewAt: now.Add(leaf.NotAfter.Sub(now) / 2)})
	return cert, nil
}

func (s *selfCert) fresh() *selfCertEntry {
	e := s.cur.Load()
	if e == nil || e.issuer != s.issuer.Current() || !time.Now().Before(e.renewAt) {
		return nil
	}
	return e
}

// tlsConfig serves Certify over TLS 1.3 with the self-issued SVID. No client
// certificate is asked for: proxies have none yet.
func (s *selfCert) tlsConfig() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS13, GetCertificate: s.GetCertificate}
}
