package identity

import (
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/internal/pemutil"
)

// Issuer is a validated, immutable signing CA: the intermediate certificate
// and key meshlet-identity signs leaves with, and the trust anchors it
// chains to. A new Issuer replaces the old one as a whole on reload.
type Issuer struct {
	cert *x509.Certificate
	// chain is what Certify returns as intermediates: the issuer first, then
	// any further certificates from the issuer file that lead to an anchor.
	chain   []*x509.Certificate
	key     crypto.Signer
	anchors []*x509.Certificate
}

// ParseIssuer builds an Issuer from PEM: the trust anchors, the issuer
// certificate (optionally followed by the intermediates between it and an
// anchor) and the issuer's private key. It refuses an issuer that is not a CA,
// whose key does not match, that is not valid at now, or that does not chain
// to one of the anchors.
func ParseIssuer(anchorsPEM, certPEM, keyPEM []byte, now time.Time) (*Issuer, error) {
	anchors, err := pemutil.Certificates(anchorsPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: trust anchors: %w", err)
	}
	chain, err := pemutil.Certificates(certPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: issuer certificate: %w", err)
	}
	key, err := pemutil.PrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("identity: issuer key: %w", err)
	}
	cert := chain[0]
	switch {
	case !cert.IsCA || !cert.BasicConstraintsValid:
		return nil, errors.New("identity: issuer certificate is not a CA (basic constraints)")
	case cert.KeyUsage != 0 && cert.KeyUsage&x509.KeyUsageCertSign == 0:
		return nil, errors.New("identity: issuer certificate lacks the keyCertSign key usage")
	case now.Before(cert.NotBefore):
		return nil, fmt.Errorf("identity: issuer certificate not valid before %s", cert.NotBefore.UTC().Format(time.RFC3339))
	case !now.Before(cert.NotAfter):
		return nil, fmt.Errorf("identity: issuer certificate expired at %s", cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool }); !ok || !pub.Equal(cert.PublicKey) {
		return nil, errors.New("identity: issuer key does not match the issuer certificate")
	}
	roots := x509.NewCertPool()
	for _, a := range anchors {
		roots.AddCert(a)
	}
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
	}); err != nil {
		return nil, fmt.Errorf("identity: issuer does not chain to the trust anchors: %w", err)
	}
	// An issuer file that also carries the root would send the anchor to
	// every proxy; drop it: peers must trust anchors from configuration only.
	var sent []*x509.Certificate
	for _, c := range chain {
		if !containsCert(anchors, c) {
			sent = append(sent, c)
		}
	}
	return &Issuer{cert: cert, chain: sent, key: key, anchors: anchors}, nil
}

func containsCert(set []*x509.Certificate, c *x509.Certificate) bool {
	for _, s := range set {
		if s.Equal(c) {
			return true
		}
	}
	return false
}

// Certificate returns the issuer's certificate.
func (is *Issuer) Certificate() *x509.Certificate { return is.cert }

// Chain returns the certificates sent with each leaf (issuer first).
func (is *Issuer) Chain() []*x509.Certificate { return is.chain }

// Anchors returns the trust anchors the issuer chains to.
func (is *Issuer) Anchors() []*x509.Certificate { return is.anchors }

// SignOptions are the per-leaf settings.
type SignOptions struct {
	// Lifetime is how long the leaf is valid from now; it is cut short at
	// the issuer's own expiry.
	Lifetime time.Duration
	// Backdate moves NotBefore into the past so that a peer whose clock is
	// behind ours still accepts the certificate at once. It never goes before
	// the issuer's NotBefore.
	Backdate time.Duration
	// Now is the signing time; the zero value means time.Now().
	Now time.Time
}

// Sign issues an X.509 SVID for id to the public key of csr, which the
// caller has already validated (ValidateCSR). Only the key is taken from the
// CSR: its subject and requested extensions are ignored, so a CSR cannot ask
// for CA powers or other names.
func (is *Issuer) Sign(csr *x509.CertificateRequest, id spiffeid.ID, opt SignOptions) (*x509.Certificate, error) {
	now := opt.Now
	if now.IsZero() {
		now = time.Now()
	}
	if !now.Before(is.cert.NotAfter) {
		return nil, fmt.Errorf("%w: issuer expired at %s", ErrIssuerUnavailable, is.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if opt.Lifetime <= 0 {
		return nil, fmt.Errorf("%w: lifetime must be positive", ErrSigning)
	}
	notBefore := now.Add(-opt.Backdate)
	if notBefore.Before(is.cert.NotBefore) {
		notBefore = is.cert.NotBefore
	}
	notAfter := now.Add(opt.Lifetime)
	if notAfter.After(is.cert.NotAfter) {
		notAfter = is.cert.NotAfter
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigning, err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  false,
		URIs:                  []*url.URL{id.URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, is.cert, csr.PublicKey, is.key)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigning, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSigning, err)
	}
	return leaf, nil
}
