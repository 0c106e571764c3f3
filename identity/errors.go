package identity

import (
	"context"
	"errors"

	"google.golang.org/grpc/codes"

	"github.com/meshlet/meshlet/identity/validate"
)

// Refusal reasons. Each is a sentinel wrapped (with %w) by the error that
// describes the particular case; Classify turns any of them into the gRPC code
// and the `reason` label of meshlet_identity_certify_refused_total.
var (
	// ErrBadRequest: a required field of the request is missing.
	ErrBadRequest = errors.New("identity: bad request")
	// ErrInvalidToken: the token is not one this service accepts.
	ErrInvalidToken = validate.ErrInvalidToken
	// ErrWrongAudience: the token is valid but was minted for another audience.
	ErrWrongAudience = validate.ErrWrongAudience
	// ErrExpiredToken: the token's expiry has passed.
	ErrExpiredToken = validate.ErrExpiredToken
	// ErrNotServiceAccount: the token authenticates a user that is not a
	// ServiceAccount, so no workload identity can be derived from it.
	ErrNotServiceAccount = errors.New("identity: token is not a service account's")
	// ErrAuthUnavailable: the token could not be checked right now (API
	// server unreachable); the caller should retry.
	ErrAuthUnavailable = errors.New("identity: token review unavailable")
	// ErrInvalidIdentity: the identity asked for is not a SPIFFE ID of this
	// trust domain.
	ErrInvalidIdentity = errors.New("identity: invalid identity")
	// ErrIdentityMismatch: the token proves another identity than the one
	// asked for.
	ErrIdentityMismatch = errors.New("identity: identity mismatch")
	// ErrCSRParse: csr_der is not a PKCS#10 request.
	ErrCSRParse = validate.ErrCSRParse
	// ErrCSRSignature: the CSR is not signed by its own key.
	ErrCSRSignature = validate.ErrCSRSignature
	// ErrCSRKeyType: the CSR's key is not ECDSA P-256.
	ErrCSRKeyType = validate.ErrCSRKeyType
	// ErrCSRExtraSANs: the CSR names DNS, IP or email SANs, or more than one
	// URI.
	ErrCSRExtraSANs = validate.ErrCSRExtraSANs
	// ErrCSRIdentity: the CSR's URI SAN is missing or is not the identity
	// asked for.
	ErrCSRIdentity = validate.ErrCSRIdentity
	// ErrIssuerUnavailable: no valid issuer is loaded.
	ErrIssuerUnavailable = errors.New("identity: issuer unavailable")
	// ErrSigning: signing failed for an internal reason.
	ErrSigning = errors.New("identity: signing failed")
)

// classes is the one table from error to gRPC code and metric reason. The
// order matters only in that more specific errors come first.
var classes = []struct {
	err    error
	code   codes.Code
	reason string
}{
	{ErrBadRequest, codes.InvalidArgument, "bad_request"},
	{ErrWrongAudience, codes.Unauthenticated, "wrong_audience"},
	{ErrExpiredToken, codes.Unauthenticated, "expired_token"},
	{ErrNotServiceAccount, codes.Unauthenticated, "not_service_account"},
	{ErrInvalidToken, codes.Unauthenticated, "invalid_token"},
	{ErrAuthUnavailable, codes.Unavailable, "token_review_unavailable"},
	{ErrInvalidIdentity, codes.InvalidArgument, "invalid_identity"},
	{ErrIdentityMismatch, codes.PermissionDenied, "identity_mismatch"},
	{ErrCSRParse, codes.InvalidArgument, "csr_parse"},
	{ErrCSRSignature, codes.InvalidArgument, "csr_signature"},
	{ErrCSRKeyType, codes.InvalidArgument, "csr_key_type"},
	{ErrCSRExtraSANs, codes.InvalidArgument, "csr_extra_sans"},
	{ErrCSRIdentity, codes.PermissionDenied, "csr_identity"},
	{ErrIssuerUnavailable, codes.Unavailable, "issuer_unavailable"},
	{ErrSigning, codes.Internal, "signing_failed"},
	{context.Canceled, codes.Canceled, "canceled"},
	{context.DeadlineExceeded, codes.DeadlineExceeded, "deadline_exceeded"},
}

// Reasons lists every reason label Classify can return, so the refusal
// counter can be initialised at zero for each (dashboards see the series
// before the first refusal).
func Reasons() []string {
	out := make([]string, 0, len(classes)+1)
	for _, c := range classes {
		out = append(out, c.reason)
	}
	return append(out, "internal")
}

// Classify maps an error returned while handling Certify to its gRPC code
// and the metric reason. It is the only place that makes this decision.
func Classify(err error) (codes.Code, string) {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.code, c.reason
		}
	}
	return codes.Internal, "internal"
}
