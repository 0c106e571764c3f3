package identity

import (
	"context"
	"errors"
	"testing"

	"github.com/meshlet/meshlet/identity/validate"
)

func TestJoinTokensAuthenticate(t *testing.T) {
	toks := newTokens(t, "spiffe://meshlet.test/ns/dev/sa/web")
	j := &JoinTokens{}
	j.set.Store(validate.NewTokenSet(toks))
	if id, err := j.Authenticate(context.Background(), []byte(toks[0].Token)); err != nil || id != toks[0].Identity {
		t.Fatalf("known token: %s, %v", id, err)
	}
	if _, err := j.Authenticate(context.Background(), []byte("nope")); !errors.Is(err, ErrInvalidToken) {
		t.Fatalf("unknown token: %v", err)
	}
}
