package identity

import (
	"context"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
)

func TestClassify(t *testing.T) {
	cases := []struct {
		err    error
		code   codes.Code
		reason string
	}{
		{fmt.Errorf("%w: x", ErrInvalidToken), codes.Unauthenticated, "invalid_token"},
		{fmt.Errorf("%w: x", ErrWrongAudience), codes.Unauthenticated, "wrong_audience"},
		{fmt.Errorf("%w: x", ErrExpiredToken), codes.Unauthenticated, "expired_token"},
		{fmt.Errorf("%w: x", ErrNotServiceAccount), codes.Unauthenticated, "not_service_account"},
		{fmt.Errorf("%w: x", ErrAuthUnavailable), codes.Unavailable, "token_review_unavailable"},
		{fmt.Errorf("%w: x", ErrIdentityMismatch), codes.PermissionDenied, "identity_mismatch"},
		{fmt.Errorf("%w: x", ErrCSRParse), codes.InvalidArgument, "csr_parse"},
		{fmt.Errorf("%w: x", ErrCSRSignature), codes.InvalidArgument, "csr_signature"},
		{fmt.Errorf("%w: x", ErrCSRKeyType), codes.InvalidArgument, "csr_key_type"},
		{fmt.Errorf("%w: x", ErrCSRExtraSANs), codes.InvalidArgument, "csr_extra_sans"},
		{fmt.Errorf("%w: x", ErrCSRIdentity), codes.PermissionDenied, "csr_identity"},
		{fmt.Errorf("%w: x", ErrIssuerUnavailable), codes.Unavailable, "issuer_unavailable"},
		{fmt.Errorf("%w: x", ErrSigning), codes.Internal, "signing_failed"},
		{fmt.Errorf("%w: x", ErrBadRequest), codes.InvalidArgument, "bad_request"},
		{fmt.Errorf("%w: x", ErrInvalidIdentity), codes.InvalidArgument, "invalid_identity"},
		{context.Canceled, codes.Canceled, "canceled"},
		{fmt.Errorf("something else"), codes.Internal, "internal"},
	}
	seen := map[string]bool{}
	for _, r := range Reasons() {
		seen[r] = true
	}
	for _, tc := range cases {
		code, reason := Classify(tc.err)
		if code != tc.code || reason != tc.reason {
			t.Errorf("Classify(%v) = %s, %s; want %s, %s", tc.err, code, reason, tc.code, tc.reason)
		}
		if !seen[reason] {
			t.Errorf("reason %s missing from Reasons()", reason)
		}
	}
}
