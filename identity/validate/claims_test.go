package validate

import (
	"encoding/base64"
	"errors"
	"testing"
	"time"
)

func jwtWith(payload string) []byte {
	enc := base64.RawURLEncoding.EncodeToString
	return []byte(enc([]byte(`{"alg":"ES256"}`)) + "." + enc([]byte(payload)) + ".c2ln")
}

func TestRefusedTokenError(t *testing.T) {
	now := time.Unix(2_000_000_000, 0)
	cases := []struct {
		name  string
		token []byte
		want  error
	}{
		{"expired", jwtWith(`{"aud":["identity.meshlet.io"],"exp":1999999999}`), ErrExpiredToken},
		{"wrong audience array", jwtWith(`{"aud":["https://kubernetes.default.svc"],"exp":2000000600}`), ErrWrongAudience},
		{"wrong audience string", jwtWith(`{"aud":"other","exp":2000000600}`), ErrWrongAudience},
		{"right audience, other failure", jwtWith(`{"aud":"identity.meshlet.io","exp":2000000600}`), ErrInvalidToken},
		{"not a JWT", []byte("join-token-like-string"), ErrInvalidToken},
		{"bad base64", []byte("a.!!!.c"), ErrInvalidToken},
		{"bad json", jwtWith(`{"aud":`), ErrInvalidToken},
		{"aud of numbers", jwtWith(`{"aud":[1,2]}`), ErrInvalidToken},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := RefusedTokenError(tc.token, "identity.meshlet.io", "api says no", now)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzTokenClaims: the unverified claims reader must not panic on any token
// and must always produce a token-class error.
func FuzzTokenClaims(f *testing.F) {
	f.Add(jwtWith(`{"aud":["identity.meshlet.io"],"exp":1}`))
	f.Add([]byte("a.b.c"))
	f.Add([]byte(""))
	f.Fuzz(func(t *testing.T, tok []byte) {
		err := RefusedTokenError(tok, "identity.meshlet.io", "", time.Now())
		if !errors.Is(err, ErrInvalidToken) && !errors.Is(err, ErrExpiredToken) && !errors.Is(err, ErrWrongAudience) {
			t.Fatalf("unexpected class: %v", err)
		}
	})
}
