package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/meshlet/meshlet/identity/api/identitypb"
	"github.com/meshlet/meshlet/internal/pemutil"
)

// localServer is a real meshlet-identity in local mode on loopback.
type localServer struct {
	ca        *testCA
	srv       *Server
	reg       *prometheus.Registry
	tokensAt  string
	addr      string
	adminAddr string
	client    identitypb.IdentityClient
}

func startLocal(t testing.TB, tokens []JoinToken, lifetime time.Duration) *localServer {
	t.Helper()
	ca := newTestCA(t)
	tokPath := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokPath, FormatJoinTokens(tokens), 0o600); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	srv, err := NewServer(Config{
		TrustDomain:    testTD.Name(),
		Mode:           ModeLocal,
		Issuer:         ca.files,
		JoinTokensFile: tokPath,
		Lifetime:       lifetime,
		ReloadInterval: 100 * time.Millisecond,
		Registry:       reg,
		Log:            slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, lis, admin) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return &localServer{ca: ca, srv: srv, reg: reg, tokensAt: tokPath, addr: lis.Addr().String(),
		adminAddr: admin.Addr().String(), client: identitypb.NewIdentityClient(conn)}
}

func (s *localServer) refused(t testing.TB, reason string) float64 {
	return value(t, s.srv.service.cfg.Metrics.refused.WithLabelValues(reason))
}

func newTokens(t testing.TB, ids ...string) []JoinToken {
	t.Helper()
	var out []JoinToken
	for _, id := range ids {
		tok, err := NewJoinToken()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, JoinToken{Token: tok, Identity: mustID(id)})
	}
	return out
}

func TestCertifyLocalMode(t *testing.T) {
	web, db := "spiffe://meshlet.test/ns/dev/sa/web", "spiffe://meshlet.test/ns/dev/sa/db"
	toks := newTokens(t, web, db)
	s := startLocal(t, toks, time.Hour)
	key := p256Key(t)
	good := csrFor(t, key, x509.CertificateRequest{}, web)

	cases := []struct {
		name   string
		req    *identitypb.CertifyRequest
		code   codes.Code
		reason string
		msg    string
	}{
		{"issued", &identitypb.CertifyRequest{Token: []byte(toks[0].Token), CsrDer: good, Identity: web}, codes.OK, "", ""},
		{"token of another identity", &identitypb.CertifyRequest{Token: []byte(toks[1].Token), CsrDer: good, Identity: web}, codes.PermissionDenied, "identity_mismatch", "token is for " + db},
		{"unknown token", &identitypb.CertifyRequest{Token: []byte("0123456789abcdef0123"), CsrDer: good, Identity: web}, codes.Unauthenticated, "invalid_token", "unknown join token"},
		{"empty token", &identitypb.CertifyRequest{CsrDer: good, Identity: web}, codes.InvalidArgument, "bad_request", "token is empty"},
		{"garbage csr", &identitypb.CertifyRequest{Token: []byte(toks[0].Token), CsrDer: []byte("garbage"), Identity: web}, codes.InvalidArgument, "csr_parse", "csr cannot be parsed"},
		{"csr with a DNS SAN", &identitypb.CertifyRequest{Token: []byte(toks[0].Token), CsrDer: csrFor(t, key, x509.CertificateRequest{DNSNames: []string{"web"}}, web), Identity: web}, codes.InvalidArgument, "csr_extra_sans", "DNS names"},
		{"csr for another identity", &identitypb.CertifyRequest{Token: []byte(toks[0].Token), CsrDer: csrFor(t, key, x509.CertificateRequest{}, db), Identity: web}, codes.PermissionDenied, "csr_identity", "URI SAN"},
		{"identity outside the trust domain", &identitypb.CertifyRequest{Token: []byte(toks[0].Token), CsrDer: good, Identity: "spiffe://other.test/ns/dev/sa/web"}, codes.InvalidArgument, "invalid_identity", "not in trust domain"},
		{"identity not a SPIFFE ID", &identitypb.CertifyRequest{Token: []byte(toks[0].Token), CsrDer: good, Identity: "web"}, codes.InvalidArgument, "invalid_identity", "invalid identity"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := 0.0
			if tc.reason != "" {
				before = s.refused(t, tc.reason)
			}
			resp, err := s.client.Certify(context.Background(), tc.req)
			if tc.code == codes.OK {
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := x509.ParseCertificate(resp.LeafCertificateDer)
				if err != nil {
					t.Fatal(err)
				}
				chain := []*x509.Certificate{leaf}
				for _, d := range resp.IntermediatesDer {
					c, err := x509.ParseCertificate(d)
					if err != nil {
						t.Fatal(err)
					}
					chain = append(chain, c)
				}
				anchors, err := pemutil.Certificates(s.ca.root.CertPEM)
				if err != nil {
					t.Fatal(err)
				}
				id, _, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(testTD, anchors))
				if err != nil {
					t.Fatal(err)
				}
				if id.String() != web {
					t.Fatalf("issued %s, want %s", id, web)
				}
				if !resp.ValidUntil.AsTime().Equal(leaf.NotAfter) {
					t.Fatalf("valid_until %s, NotAfter %s", resp.ValidUntil.AsTime(), leaf.NotAfter)
				}
				if d := time.Until(leaf.NotAfter); d < 59*time.Minute || d > time.Hour {
					t.Fatalf("lifetime left %s, want ~1h", d)
				}
				return
			}
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %s %q, want %s containing %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			if got := s.refused(t, tc.reason); got != before+1 {
				t.Fatalf("refused{reason=%s} = %v, want %v", tc.reason, got, before+1)
			}
		})
	}
	if got := value(t, s.srv.service.cfg.Metrics.issued); got != 1 {
		t.Fatalf("issued = %v, want 1", got)
	}
}

func TestAdminEndpointsAndTokenReload(t *testing.T) {
	web := "spiffe://meshlet.test/ns/dev/sa/web"
	toks := newTokens(t, web)
	s := startLocal(t, toks, time.Hour)
	for path, want := range map[string]string{
		"/live":    "ok",
		"/ready":   "ok",
		"/metrics": "meshlet_identity_certify_refused_total{reason=\"csr_extra_sans\"} 0",
	} {
		resp, err := http.Get("http://" + s.adminAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %q, want %q", path, resp.StatusCode, body, want)
		}
	}

	req := func(tok string) error {
		_, err := s.client.Certify(context.Background(), &identitypb.CertifyRequest{
			Token: []byte(tok), CsrDer: csrFor(t, p256Key(t), x509.CertificateRequest{}, web), Identity: web})
		return err
	}
	if err := req(toks[0].Token); err != nil {
		t.Fatal(err)
	}
	// Rotate the token: the old one stops working, the new one works.
	fresh := newTokens(t, web)
	if err := os.WriteFile(s.tokensAt, FormatJoinTokens(fresh), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return status.Code(req(toks[0].Token)) == codes.Unauthenticated })
	if err := req(fresh[0].Token); err != nil {
		t.Fatal(err)
	}
	// A broken file keeps the last good tokens.
	if err := os.WriteFile(s.tokensAt, []byte("broken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	m := s.srv.service.cfg.Metrics
	waitFor(t, func() bool { return value(t, m.tokenReloads.WithLabelValues("error")) >= 1 })
	if err := req(fresh[0].Token); err != nil {
		t.Fatalf("good token refused after a bad reload: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  Config
		want string
	}{
		{"no files", Config{}, "files are all required"},
		{"bad mode", Config{Mode: "cloud"}, `mode "cloud"`},
		{"local without tokens", Config{Mode: ModeLocal}, "join tokens file"},
		{"bad trust domain", Config{TrustDomain: "Not A Domain"}, "trust domain"},
		{"tiny lifetime", Config{Lifetime: time.Millisecond}, "lifetime"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewServer(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
}

// TestConcurrentCertify1000 is 1,000 proxies renewing at once, each with
// its own key, token and gRPC connection, against one local-mode server.
func TestConcurrentCertify1000(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("spiffe://meshlet.test/ns/load/sa/p%d", i)
	}
	toks := newTokens(t, ids...)
	s := startLocal(t, toks, time.Hour)
	reqs := make([]*identitypb.CertifyRequest, n)
	for i := range reqs {
		reqs[i] = &identitypb.CertifyRequest{Token: []byte(toks[i].Token), CsrDer: csrFor(t, p256Key(t), x509.CertificateRequest{}, ids[i]), Identity: ids[i]}
	}
	elapsed, errs := certifyConcurrently(t, s.addr, reqs)
	if len(errs) > 0 {
		t.Fatalf("%d of %d failed, first: %v", len(errs), n, errs[0])
	}
	if got := value(t, s.srv.service.cfg.Metrics.issued); got != float64(n) {
		t.Fatalf("issued %v, want %d", got, n)
	}
	t.Logf("%d concurrent Certify calls (own connection each) in %s: %.0f certs/s", n, elapsed, float64(n)/elapsed.Seconds())
}

func TestOversizedRequestRefused(t *testing.T) {
	web := "spiffe://meshlet.test/ns/dev/sa/web"
	s := startLocal(t, newTokens(t, web), time.Hour)
	_, err := s.client.Certify(context.Background(), &identitypb.CertifyRequest{
		Token: make([]byte, 64<<10), CsrDer: []byte("x"), Identity: web})
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("64 KiB token: %v, want ResourceExhausted", err)
	}
	_, err = s.client.Certify(context.Background(), &identitypb.CertifyRequest{
		Token: make([]byte, MaxTokenSize+1), CsrDer: []byte("x"), Identity: web})
	if st, _ := status.FromError(err); st.Code() != codes.InvalidArgument || !strings.Contains(st.Message(), "token is 16385 bytes") {
		t.Fatalf("oversized token: %v", err)
	}
}

func TestServeLeavesNoGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Run("serve", func(t *testing.T) {
		web := "spiffe://meshlet.test/ns/dev/sa/web"
		toks := newTokens(t, web)
		s := startLocal(t, toks, time.Hour)
		if _, err := s.client.Certify(context.Background(), &identitypb.CertifyRequest{
			Token: []byte(toks[0].Token), CsrDer: csrFor(t, p256Key(t), x509.CertificateRequest{}, web), Identity: web}); err != nil {
			t.Fatal(err)
		}
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

// certifyConcurrently sends every request at once, each from its own gRPC
// connection (as separate proxies would), and checks each answer is a
// certificate for the identity asked for.
func certifyConcurrently(t testing.TB, addr string, reqs []*identitypb.CertifyRequest) (time.Duration, []error) {
	t.Helper()
	conns := make([]*grpc.ClientConn, len(reqs))
	for i := range conns {
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	var (
		wg    sync.WaitGroup
		errMu sync.Mutex
		errs  []error
	)
	start := make(chan struct{})
	for i, req := range reqs {
		wg.Go(func() {
			<-start
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// WaitForReady: like a proxy, wait for the connection (which a
			// starved machine may take seconds to set up) instead of failing
			// fast; a refusal by the service still fails at once.
			resp, err := identitypb.NewIdentityClient(conns[i]).Certify(ctx, req, grpc.WaitForReady(true))
			if err == nil {
				var leaf *x509.Certificate
				if leaf, err = x509.ParseCertificate(resp.LeafCertificateDer); err == nil && leaf.URIs[0].String() != req.Identity {
					err = fmt.Errorf("got %s", leaf.URIs[0])
				}
			}
			if err != nil {
				errMu.Lock()
				errs = append(errs, fmt.Errorf("proxy %d: %w", i, err))
				errMu.Unlock()
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return time.Since(t0), errs
}

// TestIssuerExpiry: an issuer that expires while in use makes the service
// not ready and Certify refuse with issuer_unavailable, and leaves never
// outlive it.
func TestIssuerExpiry(t *testing.T) {
	web := "spiffe://meshlet.test/ns/dev/sa/web"
	toks := newTokens(t, web)
	s := startLocal(t, toks, time.Hour)
	short, err := NewIssuer(s.ca.root, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s.ca.write(t, s.ca.root.CertPEM, short)
	m := s.srv.service.cfg.Metrics
	waitFor(t, func() bool { return value(t, m.issuerReloads.WithLabelValues("ok")) == 2 })
	req := &identitypb.CertifyRequest{Token: []byte(toks[0].Token),
		CsrDer: csrFor(t, p256Key(t), x509.CertificateRequest{}, web), Identity: web}
	resp, err := s.client.Certify(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	issuerEnd := s.srv.issuer.Current().Certificate().NotAfter
	if got := resp.ValidUntil.AsTime(); got.After(issuerEnd) {
		t.Fatalf("leaf valid until %s, after its issuer (%s)", got, issuerEnd)
	}
	time.Sleep(time.Until(issuerEnd) + 50*time.Millisecond)
	_, err = s.client.Certify(context.Background(), req)
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "issuer expired") {
		t.Fatalf("certify with an expired issuer: %v", err)
	}
	if got := value(t, m.refused.WithLabelValues("issuer_unavailable")); got != 1 {
		t.Fatalf("refused{issuer_unavailable} = %v", got)
	}
	resp2, err := http.Get("http://" + s.adminAddr + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp2.Body)
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "issuer expired") {
		t.Fatalf("/ready: %d %s", resp2.StatusCode, body)
	}
}
