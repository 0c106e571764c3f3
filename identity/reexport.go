package identity

import (
	"crypto/x509"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/identity/validate"
)

// MaxCSRSize bounds csr_der; a P-256 CSR with one URI is about 300 bytes.
const MaxCSRSize = validate.MaxCSRSize

// JoinToken binds a secret token to the identity it grants (local mode).
type JoinToken = validate.JoinToken

// ValidateCSR parses a DER PKCS#10 request and accepts it only if it is
// signed by its own ECDSA P-256 key and names exactly one subject
// alternative name: the URI want (see validate.CSR).
func ValidateCSR(der []byte, want spiffeid.ID) (*x509.CertificateRequest, error) {
	return validate.CSR(der, want)
}

// NewJoinToken returns a fresh random join token (256 bits, base64url).
func NewJoinToken() (string, error) { return validate.NewJoinToken() }

// FormatJoinTokens renders tokens in the join tokens file format.
func FormatJoinTokens(tokens []JoinToken) []byte { return validate.FormatJoinTokens(tokens) }

// ParseJoinTokens reads a join tokens file; every identity must belong to
// td. Errors name the line.
func ParseJoinTokens(data []byte, td spiffeid.TrustDomain) ([]JoinToken, error) {
	return validate.ParseJoinTokens(data, td)
}
