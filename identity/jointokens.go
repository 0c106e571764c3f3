package identity

import (
	"context"
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/identity/validate"
)

// JoinTokens is the local-mode Authenticator: it accepts the tokens of a
// file, re-read when it changes. A bad new file is refused (logged and
// counted) and the previous tokens stay in force.
type JoinTokens struct {
	path    string
	td      spiffeid.TrustDomain
	metrics *Metrics
	log     *slog.Logger
	set     atomic.Pointer[validate.TokenSet]
	// settle gates new file content; the loading goroutine owns it.
	settle settle
}

// NewJoinTokens loads path once; it fails if the file is missing or bad.
func NewJoinTokens(path string, td spiffeid.TrustDomain, m *Metrics, log *slog.Logger) (*JoinTokens, error) {
	j := &JoinTokens{path: path, td: td, metrics: m, log: log}
	if _, err := j.reload(); err != nil {
		return nil, err
	}
	return j, nil
}

// Authenticate returns the identity the token is bound to.
func (j *JoinTokens) Authenticate(_ context.Context, token []byte) (spiffeid.ID, error) {
	id, ok := j.set.Load().Lookup(token)
	if !ok {
		return spiffeid.ID{}, fmt.Errorf("%w: unknown join token", ErrInvalidToken)
	}
	return id, nil
}

// Run re-reads the file every interval until ctx ends.
func (j *JoinTokens) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if changed, err := j.reload(); err != nil {
				j.log.Error("identity: join tokens file refused; keeping the previous tokens", "error", err)
			} else if changed {
				j.log.Info("identity: join tokens reloaded", "path", j.path, "tokens", j.set.Load().Len())
			}
		}
	}
}

func (j *JoinTokens) reload() (bool, error) {
	data, err := os.ReadFile(j.path)
	if err != nil {
		j.metrics.tokenReloads.WithLabelValues("error").Inc()
		return false, fmt.Errorf("identity: join tokens: %w", err)
	}
	sum := sha256.Sum256(data)
	if !j.settle.ready(sum, j.set.Load() != nil) {
		return false, nil
	}
	tokens, err := ParseJoinTokens(data, j.td)
	if err != nil {
		j.metrics.tokenReloads.WithLabelValues("error").Inc()
		return false, fmt.Errorf("%w (file %s)", err, j.path)
	}
	j.set.Store(validate.NewTokenSet(tokens))
	j.metrics.tokenReloads.WithLabelValues("ok").Inc()
	j.metrics.joinTokens.Set(float64(len(tokens)))
	return true, nil
}
