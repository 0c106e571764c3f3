package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/identity/api/identitypb"
	"github.com/meshlet/meshlet/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestCertifyKubernetes runs meshlet-identity in Kubernetes mode against a
// real kube-apiserver: real ServiceAccounts, real TokenRequest tokens, real
// TokenReview.
func TestCertifyKubernetes(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	c.ServiceAccount(t, ns, "web")
	c.ServiceAccount(t, ns, "db")
	c.ServiceAccount(t, ns, "gone")
	id := func(sa string) string { return "spiffe://cluster.local/ns/" + ns + "/sa/" + sa }

	ca := newTestCAFor(t, "cluster.local")
	reg := prometheus.NewRegistry()
	srv, err := NewServer(Config{
		TrustDomain: "cluster.local",
		Mode:        ModeKubernetes,
		Issuer:      ca.files,
		KubeClient:  c.Client(),
		Registry:    reg,
		Log:         slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	client := serveForTest(t, srv)

	webTok := c.Token(t, ns, "web", DefaultAudience, time.Hour)
	dbTok := c.Token(t, ns, "db", DefaultAudience, time.Hour)
	otherAudTok := c.Token(t, ns, "web", "https://example.com/other", time.Hour)
	goneTok := c.Token(t, ns, "gone", DefaultAudience, time.Hour)
	if err := c.Client().CoreV1().ServiceAccounts(ns).Delete(context.Background(), "gone", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	key := p256Key(t)
	webCSR := csrFor(t, key, x509.CertificateRequest{}, id("web"))

	cases := []struct {
		name     string
		token    func(t *testing.T) string
		csr      []byte
		identity string
		code     codes.Code
		reason   string
		msg      string
	}{
		{"valid token gets exactly its SPIFFE ID", func(*testing.T) string { return webTok }, webCSR, id("web"), codes.OK, "", ""},
		{"token of another service account", func(*testing.T) string { return dbTok }, webCSR, id("web"), codes.PermissionDenied, "identity_mismatch", "token is for " + id("db")},
		{"wrong audience", func(*testing.T) string { return otherAudTok }, webCSR, id("web"), codes.Unauthenticated, "wrong_audience", "https://example.com/other"},
		{"expired token signed by the cluster's own key", func(t *testing.T) string { return expiredToken(t, c, ns, "web") }, webCSR, id("web"), codes.Unauthenticated, "expired_token", "expired at"},
		{"token signed by another key", func(t *testing.T) string { return forgedToken(t, ns, "web") }, webCSR, id("web"), codes.Unauthenticated, "invalid_token", "invalid token"},
		{"token of a deleted service account", func(*testing.T) string { return goneTok }, csrFor(t, key, x509.CertificateRequest{}, id("gone")), id("gone"), codes.Unauthenticated, "invalid_token", "invalid token"},
		{"csr with extra SANs", func(*testing.T) string { return webTok }, csrFor(t, key, x509.CertificateRequest{DNSNames: []string{"web." + ns + ".svc"}}, id("web")), id("web"), codes.InvalidArgument, "csr_extra_sans", "web." + ns + ".svc"},
		{"csr asking for another identity", func(*testing.T) string { return webTok }, csrFor(t, key, x509.CertificateRequest{}, id("db")), id("web"), codes.PermissionDenied, "csr_identity", id("db")},
		{"garbage csr", func(*testing.T) string { return webTok }, []byte{0x30, 0x03, 0x02, 0x01, 0x00}, id("web"), codes.InvalidArgument, "csr_parse", "csr cannot be parsed"},
	}
	m := srv.service.cfg.Metrics
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token(t)
			var before float64
			if tc.reason != "" {
				before = value(t, m.refused.WithLabelValues(tc.reason))
			}
			resp, err := client.Certify(context.Background(), &identitypb.CertifyRequest{
				Token: []byte(tok), CsrDer: tc.csr, Identity: tc.identity})
			if tc.code == codes.OK {
				if err != nil {
					t.Fatal(err)
				}
				leaf, err := x509.ParseCertificate(resp.LeafCertificateDer)
				if err != nil {
					t.Fatal(err)
				}
				if len(leaf.URIs) != 1 || leaf.URIs[0].String() != id("web") {
					t.Fatalf("issued for %v, want %s", leaf.URIs, id("web"))
				}
				return
			}
			st, _ := status.FromError(err)
			if st.Code() != tc.code || !strings.Contains(st.Message(), tc.msg) {
				t.Fatalf("got %s %q; want %s containing %q", st.Code(), st.Message(), tc.code, tc.msg)
			}
			if got := value(t, m.refused.WithLabelValues(tc.reason)); got != before+1 {
				t.Fatalf("refused{reason=%q} went %v → %v", tc.reason, before, got)
			}
			t.Logf("refused: %s", st.Message())
		})
	}
}

func serveForTest(t testing.TB, srv *Server) identitypb.IdentityClient {
	t.Helper()
	conn, err := grpc.NewClient(serveAddrForTest(t, srv), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return identitypb.NewIdentityClient(conn)
}

// serveAddrForTest serves srv on loopback until the test ends.
func serveAddrForTest(t testing.TB, srv *Server) string {
	t.Helper()
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return lis.Addr().String()
}

// expiredToken mints, with the apiserver's own service-account signing key,
// a token for ns/sa that expired an hour ago: TokenRequest cannot produce
// one (its minimum lifetime is 10 minutes), and this is exactly what a
// stale token looks like to the apiserver.
func expiredToken(t *testing.T, c *kubetest.Cluster, ns, sa string) string {
	t.Helper()
	keyPath := filepath.Join(c.Dir(), "pki", "sa.key")
	b, err := os.ReadFile(keyPath)
	if err != nil {
		t.Skipf("service-account signing key not where expected (%v); kubetest's layout changed", err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", keyPath)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	acct, err := c.Client().CoreV1().ServiceAccounts(ns).Get(context.Background(), sa, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	return signJWT(t, k.(*ecdsa.PrivateKey), saClaims(ns, sa, string(acct.UID), now.Add(-2*time.Hour), now.Add(-time.Hour)))
}

// forgedToken is a well-formed, current token for ns/sa signed by a key the
// apiserver does not know.
func forgedToken(t *testing.T, ns, sa string) string {
	now := time.Now()
	return signJWT(t, p256Key(t), saClaims(ns, sa, "00000000-0000-0000-0000-000000000000", now, now.Add(time.Hour)))
}

func saClaims(ns, sa, uid string, iat, exp time.Time) map[string]any {
	return map[string]any{
		"iss": kubetest.Issuer,
		"sub": "system:serviceaccount:" + ns + ":" + sa,
		"aud": []string{DefaultAudience},
		"iat": iat.Unix(),
		"nbf": iat.Unix(),
		"exp": exp.Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      ns,
			"serviceaccount": map[string]any{"name": sa, "uid": uid},
		},
	}
}

// signJWT produces a compact ES256 JWS, with the key ID the apiserver
// derives from the public key (SHA-256 of its PKIX DER, base64url).
func signJWT(t *testing.T, key *ecdsa.PrivateKey, claims map[string]any) string {
	t.Helper()
	pub, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		t.Fatal(err)
	}
	kid := sha256.Sum256(pub)
	enc := base64.RawURLEncoding
	hdr, _ := json.Marshal(map[string]string{"alg": "ES256", "kid": enc.EncodeToString(kid[:])})
	body, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	signing := enc.EncodeToString(hdr) + "." + enc.EncodeToString(body)
	digest := sha256.Sum256([]byte(signing))
	r, s, err := ecdsa.Sign(rand.Reader, key, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return signing + "." + enc.EncodeToString(sig)
}

// TestCertifyKubernetesConcurrent is 1,000 proxies (100 under -short)
// renewing at once in Kubernetes mode: each call is a real TokenReview,
// through the client rate limits meshlet-identity uses in production.
func TestCertifyKubernetesConcurrent(t *testing.T) {
	n := 1000
	if testing.Short() {
		n = 100
	}
	const sas, tokensPerSA = 10, 10
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	tokens := make([][]string, sas)
	for s := range sas {
		sa := c.ServiceAccount(t, ns, fmt.Sprintf("sa%d", s))
		for range tokensPerSA {
			tokens[s] = append(tokens[s], c.Token(t, ns, sa, DefaultAudience, time.Hour))
		}
	}
	kc, err := newKubeClient(c.Config(), DefaultKubeQPS, DefaultKubeBurst)
	if err != nil {
		t.Fatal(err)
	}
	ca := newTestCAFor(t, "cluster.local")
	srv, err := NewServer(Config{TrustDomain: "cluster.local", Mode: ModeKubernetes, Issuer: ca.files,
		KubeClient: kc, Registry: prometheus.NewRegistry(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	lisAddr := serveAddrForTest(t, srv)
	reqs := make([]*identitypb.CertifyRequest, n)
	for i := range reqs {
		s := i % sas
		id := fmt.Sprintf("spiffe://cluster.local/ns/%s/sa/sa%d", ns, s)
		reqs[i] = &identitypb.CertifyRequest{Token: []byte(tokens[s][(i/sas)%tokensPerSA]),
			CsrDer: csrFor(t, p256Key(t), x509.CertificateRequest{}, id), Identity: id}
	}
	elapsed, errs := certifyConcurrently(t, lisAddr, reqs)
	if len(errs) > 0 {
		t.Fatalf("%d of %d failed, first: %v", len(errs), n, errs[0])
	}
	if got := value(t, srv.service.cfg.Metrics.issued); got != float64(n) {
		t.Fatalf("issued %v, want %d", got, n)
	}
	t.Logf("%d concurrent Certify calls with TokenReview in %s: %.0f certs/s", n, elapsed, float64(n)/elapsed.Seconds())
}
