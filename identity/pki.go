package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/url"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/internal/pemutil"
)

// KeyPair is a PEM-encoded certificate and its PKCS#8 private key, as they
// are written to files or Secrets (ca.crt / issuer.crt / issuer.key).
type KeyPair struct {
	CertPEM []byte
	KeyPEM  []byte
}

// NewRootCA creates a self-signed trust anchor for trustDomain (for example
// "cluster.local"), valid from one minute ago for lifetime. The key is ECDSA
// P-256. meshctl install and meshctl dev use it when the user brings no CA.
func NewRootCA(trustDomain string, lifetime time.Duration) (KeyPair, error) {
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return KeyPair{}, fmt.Errorf("identity: root ca: trust domain %q: %w", trustDomain, err)
	}
	if lifetime <= 0 {
		return KeyPair{}, errors.New("identity: root ca: lifetime must be positive")
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "meshlet trust anchor " + td.Name()},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(lifetime),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		// One issuer level below the anchor, no more.
		MaxPathLen: 1,
		URIs:       []*url.URL{td.ID().URL()},
	}
	return newCA(tmpl, nil, nil)
}

// NewIssuer creates an intermediate CA signed by root (as returned by
// NewRootCA or read from files), valid from one minute ago for lifetime but
// never beyond the root's expiry. It may sign leaves only (path length 0).
// meshlet-identity signs proxy certificates with it.
func NewIssuer(root KeyPair, lifetime time.Duration) (KeyPair, error) {
	if lifetime <= 0 {
		return KeyPair{}, errors.New("identity: issuer: lifetime must be positive")
	}
	certs, err := pemutil.Certificates(root.CertPEM)
	if err != nil {
		return KeyPair{}, fmt.Errorf("identity: issuer: root certificate: %w", err)
	}
	rootCert := certs[0]
	rootKey, err := pemutil.PrivateKey(root.KeyPEM)
	if err != nil {
		return KeyPair{}, fmt.Errorf("identity: issuer: root key: %w", err)
	}
	if !rootCert.IsCA {
		return KeyPair{}, errors.New("identity: issuer: root certificate is not a CA")
	}
	now := time.Now()
	notAfter := now.Add(lifetime)
	if notAfter.After(rootCert.NotAfter) {
		notAfter = rootCert.NotAfter
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: "meshlet issuer"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		URIs:                  rootCert.URIs,
	}
	return newCA(tmpl, rootCert, rootKey)
}

// newCA generates a P-256 key and signs tmpl with parentKey (self-signed
// when parent is nil).
func newCA(tmpl, parent *x509.Certificate, parentKey crypto.Signer) (KeyPair, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return KeyPair{}, fmt.Errorf("identity: generate key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return KeyPair{}, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return KeyPair{}, fmt.Errorf("identity: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return KeyPair{}, fmt.Errorf("identity: marshal key: %w", err)
	}
	return KeyPair{
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
	}, nil
}

// randomSerial returns a positive random 128-bit serial number, as RFC 5280
// (at most 20 octets) and the CA/B forum (at least 64 random bits) expect.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	n, err := rand.Int(rand.Reader, limit)
	if err != nil {
		return nil, fmt.Errorf("identity: serial number: %w", err)
	}
	// Zero is not a valid serial; the chance is 2^-128 but costs one line.
	if n.Sign() == 0 {
		n.SetInt64(1)
	}
	return n, nil
}
