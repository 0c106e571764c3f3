package validate

import "errors"

// Refusal sentinels for outside input; identity.Classify maps them to gRPC
// codes and metric reasons (identity re-exports them under the same names).
var (
	ErrInvalidToken  = errors.New("identity: invalid token")
	ErrWrongAudience = errors.New("identity: token has the wrong audience")
	ErrExpiredToken  = errors.New("identity: token expired")
	ErrCSRParse      = errors.New("identity: csr cannot be parsed")
	ErrCSRSignature  = errors.New("identity: csr signature invalid")
	ErrCSRKeyType    = errors.New("identity: csr key type not allowed")
	ErrCSRExtraSANs  = errors.New("identity: csr has extra subject alternative names")
	ErrCSRIdentity   = errors.New("identity: csr identity does not match")
)
