package validate

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// RefusedTokenError explains a token the API server did not authenticate
// (apiErr is its message) when aud was required.
// The API server's message alone does not say why in a stable way, so the
// token's own (unverified) claims choose the reason: they only pick the label
// of a refusal, never grant anything.
func RefusedTokenError(token []byte, aud, apiErr string, now time.Time) error {
	if apiErr == "" {
		apiErr = "not authenticated"
	}
	c, ok := parseJWTClaims(token)
	switch {
	case ok && c.Exp != 0 && !now.Before(time.Unix(c.Exp, 0)):
		return fmt.Errorf("%w: expired at %s (api server: %s)", ErrExpiredToken, time.Unix(c.Exp, 0).UTC().Format(time.RFC3339), apiErr)
	case ok && !slices.Contains(c.Aud, aud):
		return fmt.Errorf("%w: token audiences %q, want %q (api server: %s)", ErrWrongAudience, c.Aud, aud, apiErr)
	}
	return fmt.Errorf("%w: %s", ErrInvalidToken, apiErr)
}

// jwtClaims are the registered claims used to explain a refusal.
type jwtClaims struct {
	Aud []string
	Exp int64
}

// parseJWTClaims decodes the payload of a compact JWS without verifying it.
func parseJWTClaims(token []byte) (jwtClaims, bool) {
	parts := strings.Split(string(token), ".")
	if len(parts) != 3 {
		return jwtClaims{}, false
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return jwtClaims{}, false
	}
	var raw struct {
		Aud json.RawMessage `json:"aud"`
		Exp json.Number     `json:"exp"`
	}
	if err := json.Unmarshal(payload, &raw); err != nil {
		return jwtClaims{}, false
	}
	var c jwtClaims
	// "aud" is a string or an array of strings (RFC 7519 section 4.1.3).
	if len(raw.Aud) > 0 {
		var one string
		if err := json.Unmarshal(raw.Aud, &one); err == nil {
			c.Aud = []string{one}
		} else if err := json.Unmarshal(raw.Aud, &c.Aud); err != nil {
			return jwtClaims{}, false
		}
	}
	if raw.Exp != "" {
		f, err := raw.Exp.Float64()
		if err != nil {
			return jwtClaims{}, false
		}
		c.Exp = int64(f)
	}
	return c, true
}
