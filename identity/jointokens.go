package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Join tokens are how proxies outside Kubernetes (meshctl dev, VMs) prove
// their identity. The file holds one token per line:
//
//	# comments and blank lines are ignored
//	<token> <spiffe-id>
//
// A token is 16 to 512 printable ASCII characters without spaces; each token
// appears once and grants exactly one SPIFFE ID of the trust domain.

const (
	minJoinTokenLen = 16
	maxJoinTokenLen = 512
	// maxJoinTokensFile bounds what ParseJoinTokens reads.
	maxJoinTokensFile = 4 << 20
)

// JoinToken binds a secret token to the identity it grants.
type JoinToken struct {
	Token    string
	Identity spiffeid.ID
}

// NewJoinToken returns a fresh random token (256 bits, base64url).
func NewJoinToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("identity: join token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// FormatJoinTokens renders tokens in the file format ParseJoinTokens reads.
func FormatJoinTokens(tokens []JoinToken) []byte {
	var b bytes.Buffer
	b.WriteString("# meshlet join tokens: <token> <spiffe-id>\n")
	for _, t := range tokens {
		fmt.Fprintf(&b, "%s %s\n", t.Token, t.Identity)
	}
	return b.Bytes()
}

// ParseJoinTokens reads a join tokens file. Every identity must belong to
// td. Errors name the line.
func ParseJoinTokens(data []byte, td spiffeid.TrustDomain) ([]JoinToken, error) {
	if len(data) > maxJoinTokensFile {
		return nil, fmt.Errorf("identity: join tokens: file is %d bytes, more than %d", len(data), maxJoinTokensFile)
	}
	var out []JoinToken
	seen := map[string]int{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 4096), maxJoinTokensFile)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Fields(line)
		if len(fields) != 2 {
			return nil, fmt.Errorf("identity: join tokens: line %d: want \"<token> <spiffe-id>\", got %d fields", n, len(fields))
		}
		tok, idStr := fields[0], fields[1]
		if err := checkJoinToken(tok); err != nil {
			return nil, fmt.Errorf("identity: join tokens: line %d: %w", n, err)
		}
		id, err := spiffeid.FromString(idStr)
		if err != nil {
			return nil, fmt.Errorf("identity: join tokens: line %d: identity %q: %w", n, idStr, err)
		}
		if !id.MemberOf(td) {
			return nil, fmt.Errorf("identity: join tokens: line %d: identity %s is not in trust domain %s", n, id, td)
		}
		if prev, dup := seen[tok]; dup {
			return nil, fmt.Errorf("identity: join tokens: line %d: token already used on line %d", n, prev)
		}
		seen[tok] = n
		out = append(out, JoinToken{Token: tok, Identity: id})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("identity: join tokens: %w", err)
	}
	return out, nil
}

func checkJoinToken(tok string) error {
	if len(tok) < minJoinTokenLen || len(tok) > maxJoinTokenLen {
		return fmt.Errorf("token is %d characters, want %d to %d", len(tok), minJoinTokenLen, maxJoinTokenLen)
	}
	for i := 0; i < len(tok); i++ {
		if c := tok[i]; c <= ' ' || c > '~' {
			return fmt.Errorf("token has a non-printable or non-ASCII byte at offset %d", i)
		}
	}
	return nil
}

// joinTokenSet is an immutable snapshot: the SHA-256 of each token, so that
// comparisons run over fixed-size values in constant time.
type joinTokenSet struct {
	sums [][sha256.Size]byte
	ids  []spiffeid.ID
}

func newJoinTokenSet(tokens []JoinToken) *joinTokenSet {
	s := &joinTokenSet{}
	for _, t := range tokens {
		s.sums = append(s.sums, sha256.Sum256([]byte(t.Token)))
		s.ids = append(s.ids, t.Identity)
	}
	return s
}

// lookup compares the presented token with every entry, without stopping
// early, so the time taken says nothing about which entry (or how much of a
// token) matched.
func (s *joinTokenSet) lookup(token []byte) (spiffeid.ID, bool) {
	sum := sha256.Sum256(token)
	match := -1
	for i := range s.sums {
		if subtle.ConstantTimeCompare(sum[:], s.sums[i][:]) == 1 {
			match = i
		}
	}
	if match < 0 {
		return spiffeid.ID{}, false
	}
	return s.ids[match], true
}

// JoinTokens is the local-mode Authenticator: it accepts the tokens of a
// file, re-read when it changes. A bad new file is refused (logged and
// counted) and the previous tokens stay in force.
type JoinTokens struct {
	path    string
	td      spiffeid.TrustDomain
	metrics *Metrics
	log     *slog.Logger
	set     atomic.Pointer[joinTokenSet]
	lastSum [sha256.Size]byte // owned by the loading goroutine
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
	id, ok := j.set.Load().lookup(token)
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
				j.log.Info("identity: join tokens reloaded", "path", j.path, "tokens", len(j.set.Load().ids))
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
	if j.set.Load() != nil && sum == j.lastSum {
		return false, nil
	}
	j.lastSum = sum
	tokens, err := ParseJoinTokens(data, j.td)
	if err != nil {
		j.metrics.tokenReloads.WithLabelValues("error").Inc()
		return false, fmt.Errorf("%w (file %s)", err, j.path)
	}
	j.set.Store(newJoinTokenSet(tokens))
	j.metrics.tokenReloads.WithLabelValues("ok").Inc()
	j.metrics.joinTokens.Set(float64(len(tokens)))
	return true, nil
}
