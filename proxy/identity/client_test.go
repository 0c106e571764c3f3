package identity

import (
	"crypto/x509"
	"errors"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"

	caid "github.com/meshlet/meshlet/identity"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

var _ meshtls.Source = (*Client)(nil)

const (
	webID = "spiffe://meshlet.test/ns/shop/sa/web"
	dbID  = "spiffe://meshlet.test/ns/shop/sa/db"
)

func TestClientObtainsCertificate(t *testing.T) {
	s := startIdentity(t, time.Hour, webID)
	p := startClient(t, s, webID)
	if _, err := p.GetX509SVID(); err != nil && !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("before ready: %v", err)
	}
	waitReady(t, p)
	svid, err := p.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	if svid.ID.String() != webID {
		t.Fatalf("SVID for %s, want %s", svid.ID, webID)
	}
	if len(svid.Certificates) != 2 {
		t.Fatalf("%d certificates, want leaf + issuer", len(svid.Certificates))
	}
	leaf := svid.Certificates[0]
	if got := value(t, p.metrics.expiry); got != float64(leaf.NotAfter.Unix()) {
		t.Fatalf("expiry gauge %v, want %d", got, leaf.NotAfter.Unix())
	}
	if got := value(t, p.metrics.renewals); got != 1 {
		t.Fatalf("renewals %v, want 1", got)
	}
	if _, err := p.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString("other.test")); err == nil {
		t.Fatal("bundle for a foreign trust domain")
	}
	b, err := p.GetX509BundleForTrustDomain(spiffeid.RequireTrustDomainFromString(td))
	if err != nil || len(b.X509Authorities()) != 1 {
		t.Fatalf("bundle: %v", err)
	}
}

// TestClientRecoversWhenTokenFixed: a wrong token is refused (and counted
// by reason); the token file is read again on each attempt, so writing the
// right token makes the proxy ready without a restart.
func TestClientRecoversWhenTokenFixed(t *testing.T) {
	s := startIdentity(t, time.Hour, webID, dbID)
	tokFile := s.tokenFile(t, dbID) // db's token, web's identity
	p := startClient(t, s, webID, func(c *Config) { c.TokenFile = tokFile })
	fails := p.metrics.failures.WithLabelValues("permission_denied")
	deadline := time.Now().Add(5 * time.Second)
	for value(t, fails) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("no permission_denied failures counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-p.Ready():
		t.Fatal("ready with a refused token")
	default:
	}
	if p := p.lastErr.Load(); p == nil || !strings.Contains((*p).Error(), "token is for "+dbID) {
		t.Fatalf("last error %v does not explain the refusal", p)
	}
	writeFile(t, tokFile, []byte(s.tokens[spiffeid.RequireFromString(webID)]))
	waitReady(t, p)
}

func TestClientMissingTokenFile(t *testing.T) {
	s := startIdentity(t, time.Hour, webID)
	p := startClient(t, s, webID, func(c *Config) { c.TokenFile = "/nonexistent/token" })
	fails := p.metrics.failures.WithLabelValues("token_file")
	deadline := time.Now().Add(5 * time.Second)
	for value(t, fails) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no token_file failure counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestClientRefusesForeignCertificate: an identity service whose issuer does
// not chain to the proxy's trust anchors gets its certificates refused by
// the proxy, which stays not ready.
func TestClientRefusesForeignCertificate(t *testing.T) {
	s := startIdentity(t, time.Hour, webID)
	other, err := caid.NewRootCA(td, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	p := startClient(t, s, webID, func(c *Config) { c.TrustAnchorsPEM = other.CertPEM })
	fails := p.metrics.failures.WithLabelValues("invalid_response")
	deadline := time.Now().Add(5 * time.Second)
	for value(t, fails) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("foreign certificate not refused")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := p.GetX509SVID(); !errors.Is(err, ErrNoCertificate) {
		t.Fatalf("GetX509SVID: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	s := startIdentity(t, time.Hour, webID)
	good := func() Config {
		return Config{Addr: s.addr, Identity: spiffeid.RequireFromString(webID), TokenFile: "/x",
			TrustAnchorsPEM: s.anchors, Registry: s.reg}
	}
	cases := []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no addr", func(c *Config) { c.Addr = "" }, "address is required"},
		{"no identity", func(c *Config) { c.Identity = spiffeid.ID{} }, "identity"},
		{"no anchors", func(c *Config) { c.TrustAnchorsPEM = nil }, "trust anchors are required"},
		{"garbage anchors", func(c *Config) { c.TrustAnchorsPEM = []byte("x") }, "no PEM CERTIFICATE"},
		{"bad fraction", func(c *Config) { c.RenewFraction = 1.5 }, "renew fraction"},
		{"no registry", func(c *Config) { c.Registry = nil }, "registry"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good()
			tc.mod(&cfg)
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

func TestBackoffAndRenewTiming(t *testing.T) {
	c := &Client{cfg: Config{RenewFraction: 0.7, MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second}}
	for n := range 40 {
		want := min(100*time.Millisecond<<min(n, 20), 2*time.Second)
		for range 20 {
			if d := c.backoff(n); d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want in [%s, %s]", n, d, want/2, want)
			}
		}
	}
	// Holding a certificate with 4s left: retries stay under 1s.
	leaf := &x509.Certificate{NotAfter: time.Now().Add(4 * time.Second)}
	c.svid.Store(&x509svid.SVID{Certificates: []*x509.Certificate{leaf}})
	if d := c.backoff(10); d > time.Second || d < 400*time.Millisecond {
		t.Fatalf("backoff with 4s left = %s, want about 0.5s..1s", d)
	}
	// Expired: back to the plain backoff, no hammering.
	leaf.NotAfter = time.Now().Add(-time.Minute)
	if d := c.backoff(10); d < time.Second {
		t.Fatalf("backoff with an expired certificate = %s, want >= 1s", d)
	}
	now := time.Now()
	for range 100 {
		d := c.renewIn(now, now.Add(100*time.Second))
		if d < 65*time.Second || d > 75*time.Second {
			t.Fatalf("renewIn = %s, want 65s..75s", d)
		}
	}
}

func TestRunLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("client", func(t *testing.T) {
		s := startIdentity(t, time.Hour, webID)
		waitReady(t, startClient(t, s, webID))
	})
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExpiredCertificateNotServed: once the held certificate has expired,
// handshakes get an error naming the expiry and the last renewal failure,
// rather than a certificate every peer would refuse.
func TestExpiredCertificateNotServed(t *testing.T) {
	s := startIdentity(t, time.Hour, webID)
	p := startClient(t, s, webID)
	waitReady(t, p)
	svid, err := p.GetX509SVID()
	if err != nil {
		t.Fatal(err)
	}
	stale := *svid
	leaf := *svid.Certificates[0]
	leaf.NotAfter = time.Now().Add(-time.Second)
	stale.Certificates = append([]*x509.Certificate{&leaf}, svid.Certificates[1:]...)
	p.svid.Store(&stale)
	last := errors.New("identity service unreachable")
	p.lastErr.Store(&last)
	_, err = p.GetX509SVID()
	if err == nil || !strings.Contains(err.Error(), "certificate expired at") || !strings.Contains(err.Error(), "identity service unreachable") {
		t.Fatalf("GetX509SVID with an expired certificate: %v", err)
	}
}
