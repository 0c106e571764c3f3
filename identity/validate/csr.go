package validate

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"fmt"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// MaxCSRSize bounds csr_der; a P-256 CSR with one URI is about 300 bytes.
const MaxCSRSize = 16 << 10

// CSR parses a DER PKCS#10 request and accepts it only if it is
// signed by its own ECDSA P-256 key and names exactly one subject
// alternative name: the URI want. The returned error wraps one of ErrCSRParse,
// ErrCSRSignature, ErrCSRKeyType, ErrCSRExtraSANs or ErrCSRIdentity.
func CSR(der []byte, want spiffeid.ID) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrCSRParse)
	}
	if len(der) > MaxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrCSRParse, len(der), MaxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRParse, err)
	}
	pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: %s key, want ECDSA P-256", ErrCSRKeyType, csr.PublicKeyAlgorithm)
	}
	if pub.Curve != elliptic.P256() {
		return nil, fmt.Errorf("%w: ECDSA curve %s, want P-256", ErrCSRKeyType, pub.Curve.Params().Name)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrCSRSignature, err)
	}
	switch {
	case len(csr.DNSNames) > 0:
		return nil, fmt.Errorf("%w: DNS names %q", ErrCSRExtraSANs, csr.DNSNames)
	case len(csr.IPAddresses) > 0:
		return nil, fmt.Errorf("%w: IP addresses %v", ErrCSRExtraSANs, csr.IPAddresses)
	case len(csr.EmailAddresses) > 0:
		return nil, fmt.Errorf("%w: email addresses %q", ErrCSRExtraSANs, csr.EmailAddresses)
	case len(csr.URIs) > 1:
		return nil, fmt.Errorf("%w: %d URIs, want exactly one", ErrCSRExtraSANs, len(csr.URIs))
	case len(csr.URIs) == 0:
		return nil, fmt.Errorf("%w: no URI SAN, want %s", ErrCSRIdentity, want)
	}
	got := csr.URIs[0].String()
	if got != want.String() {
		return nil, fmt.Errorf("%w: URI SAN %q, want %q", ErrCSRIdentity, got, want.String())
	}
	return csr, nil
}
