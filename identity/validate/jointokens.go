package validate

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"

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

// TokenSet is an immutable set of join tokens: the SHA-256 of each token,
// so that comparisons run over fixed-size values in constant time.
type TokenSet struct {
	sums [][sha256.Size]byte
	ids  []spiffeid.ID
}

// NewTokenSet indexes tokens (as ParseJoinTokens returns them).
func NewTokenSet(tokens []JoinToken) *TokenSet {
	s := &TokenSet{}
	for _, t := range tokens {
		s.sums = append(s.sums, sha256.Sum256([]byte(t.Token)))
		s.ids = append(s.ids, t.Identity)
	}
	return s
}

// Lookup returns the identity token is bound to. It compares the presented
// token with every entry, without stopping early, so the time taken says
// nothing about which entry (or how much of a token) matched.
func (s *TokenSet) Lookup(token []byte) (spiffeid.ID, bool) {
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

// Len is the number of tokens.
func (s *TokenSet) Len() int { return len(s.ids) }
