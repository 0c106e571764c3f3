package identity

import (
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	caid "github.com/meshlet/meshlet/identity"
)

// TestCertifyOverTLS: with meshlet-identity -tls, a proxy that expects the
// service's SPIFFE ID gets its certificate; one that expects another ID, or
// that speaks plaintext, never sends its token and stays not ready.
func TestCertifyOverTLS(t *testing.T) {
	root, err := caid.NewRootCA(td, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	serverID := spiffeid.RequireFromString("spiffe://meshlet.test/ns/meshlet/sa/meshlet-identity")
	s := startIdentityMode(t, root, time.Hour, func(c *caid.Config) { c.TLS = true }, webID, dbID)

	good := startClient(t, s, webID, func(c *Config) { c.ServerIdentity = serverID })
	waitReady(t, good)

	cases := []struct {
		name   string
		mod    func(*Config)
		reason string
	}{
		{"server identity not the expected one", func(c *Config) {
			c.ServerIdentity = spiffeid.RequireFromString("spiffe://meshlet.test/ns/evil/sa/identity")
		}, "unavailable"},
		{"plaintext client", func(*Config) {}, "unavailable"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := startClient(t, s, dbID, tc.mod)
			fails := p.metrics.failures.WithLabelValues(tc.reason)
			deadline := time.Now().Add(10 * time.Second)
			for value(t, fails) < 1 {
				if time.Now().After(deadline) {
					t.Fatalf("no %s failure", tc.reason)
				}
				time.Sleep(20 * time.Millisecond)
			}
			select {
			case <-p.Ready():
				t.Fatal("ready without a verified identity service")
			default:
			}
			if e := p.lastErr.Load(); e != nil {
				t.Logf("refused: %v", *e)
			}
		})
	}
	if got := value(t, s.issuedCounter(t)); got != 1 {
		t.Fatalf("identity issued %v certificates, want 1 (only the verified client's)", got)
	}
}
