package identity

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlet/meshlet/identity/validate"
)

// DefaultAudience is the audience the proxy's projected ServiceAccount token
// is minted for (docs/architecture.md).
const DefaultAudience = "identity.meshlet.io"

// MaxTokenSize bounds the token field; a projected token is about 1 KiB.
const MaxTokenSize = 16 << 10

// TokenReviewer is the Kubernetes-mode Authenticator: it asks the API server
// (TokenReview, authentication.k8s.io/v1) whether the token is valid for
// Audience and derives spiffe://<trust-domain>/ns/<ns>/sa/<sa> from the
// ServiceAccount it authenticates.
type TokenReviewer struct {
	Client      kubernetes.Interface
	TrustDomain spiffeid.TrustDomain
	// Audience the token must carry; "" means DefaultAudience.
	Audience string
	// Timeout of one TokenReview call, the wait for the client's rate
	// limiter included; 0 means 30s. The caller's deadline applies too.
	Timeout time.Duration
}

// Authenticate implements Authenticator.
func (r *TokenReviewer) Authenticate(ctx context.Context, token []byte) (spiffeid.ID, error) {
	aud := r.Audience
	if aud == "" {
		aud = DefaultAudience
	}
	timeout := r.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr, err := r.Client.AuthenticationV1().TokenReviews().Create(ctx, &authv1.TokenReview{
		Spec: authv1.TokenReviewSpec{Token: string(token), Audiences: []string{aud}},
	}, metav1.CreateOptions{})
	if err != nil {
		if ctx.Err() != nil && ctx.Err() != context.DeadlineExceeded {
			return spiffeid.ID{}, ctx.Err()
		}
		return spiffeid.ID{}, fmt.Errorf("%w: %w", ErrAuthUnavailable, err)
	}
	st := tr.Status
	if !st.Authenticated {
		return spiffeid.ID{}, validate.RefusedTokenError(token, aud, st.Error, time.Now())
	}
	// The API server only authenticates for an audience it was asked for,
	// but an authenticator that ignores audiences would answer with none:
	// insist on ours.
	if !slices.Contains(st.Audiences, aud) {
		return spiffeid.ID{}, fmt.Errorf("%w: token review granted audiences %q, want %q", ErrWrongAudience, st.Audiences, aud)
	}
	ns, sa, ok := serviceAccountOf(st.User.Username)
	if !ok {
		return spiffeid.ID{}, fmt.Errorf("%w: authenticated as %q", ErrNotServiceAccount, st.User.Username)
	}
	id, err := spiffeid.FromSegments(r.TrustDomain, "ns", ns, "sa", sa)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("%w: service account %s/%s: %w", ErrInvalidIdentity, ns, sa, err)
	}
	return id, nil
}

// serviceAccountOf splits "system:serviceaccount:<ns>:<sa>".
func serviceAccountOf(user string) (ns, sa string, ok bool) {
	rest, ok := strings.CutPrefix(user, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, sa, ok = strings.Cut(rest, ":")
	if !ok || ns == "" || sa == "" || strings.Contains(sa, ":") {
		return "", "", false
	}
	return ns, sa, true
}
