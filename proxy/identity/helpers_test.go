package identity

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/spiffe/go-spiffe/v2/spiffeid"

	caid "github.com/meshlet/meshlet/identity"
)

const td = "meshlet.test"

// identityServer is a real meshlet-identity (local mode) on loopback.
type identityServer struct {
	addr    string
	anchors []byte
	tokens  map[spiffeid.ID]string
	dir     string
	reg     *prometheus.Registry
}

func startIdentity(t testing.TB, lifetime time.Duration, ids ...string) *identityServer {
	t.Helper()
	root, err := caid.NewRootCA(td, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return startIdentityWithRoot(t, root, lifetime, ids...)
}

func startIdentityWithRoot(t testing.TB, root caid.KeyPair, lifetime time.Duration, ids ...string) *identityServer {
	t.Helper()
	return startIdentityMode(t, root, lifetime, func(*caid.Config) {}, ids...)
}

// startIdentityMode starts meshlet-identity in local mode with join tokens
// for ids, unless mod switches it to another mode.
func startIdentityMode(t testing.TB, root caid.KeyPair, lifetime time.Duration, mod func(*caid.Config), ids ...string) *identityServer {
	t.Helper()
	iss, err := caid.NewIssuer(root, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	files := caid.IssuerFiles{
		AnchorsFile: filepath.Join(dir, "ca.crt"),
		CertFile:    filepath.Join(dir, "issuer.crt"),
		KeyFile:     filepath.Join(dir, "issuer.key"),
	}
	s := &identityServer{anchors: root.CertPEM, tokens: map[spiffeid.ID]string{}, dir: dir, reg: prometheus.NewRegistry()}
	var toks []caid.JoinToken
	for _, id := range ids {
		tok, err := caid.NewJoinToken()
		if err != nil {
			t.Fatal(err)
		}
		sid := spiffeid.RequireFromString(id)
		s.tokens[sid] = tok
		toks = append(toks, caid.JoinToken{Token: tok, Identity: sid})
	}
	writeFile(t, files.AnchorsFile, root.CertPEM)
	writeFile(t, files.CertFile, iss.CertPEM)
	writeFile(t, files.KeyFile, iss.KeyPEM)
	tokFile := filepath.Join(dir, "join-tokens")
	writeFile(t, tokFile, caid.FormatJoinTokens(toks))
	cfg := caid.Config{
		TrustDomain:    td,
		Mode:           caid.ModeLocal,
		Issuer:         files,
		JoinTokensFile: tokFile,
		Lifetime:       lifetime,
		Registry:       s.reg,
		Log:            slog.New(slog.DiscardHandler),
	}
	mod(&cfg)
	srv, err := caid.NewServer(cfg)
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
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("identity serve: %v", err)
		}
	})
	s.addr = lis.Addr().String()
	return s
}

// tokenFile writes the join token of id to a file and returns its path.
func (s *identityServer) tokenFile(t testing.TB, id string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	writeFile(t, p, []byte(s.tokens[spiffeid.RequireFromString(id)]+"\n"))
	return p
}

// proxy is a running Client.
type proxy struct {
	*Client
	reg *prometheus.Registry
}

func startClient(t testing.TB, s *identityServer, id string, mod ...func(*Config)) *proxy {
	t.Helper()
	reg := prometheus.NewRegistry()
	cfg := Config{
		Addr:            s.addr,
		Identity:        spiffeid.RequireFromString(id),
		TokenFile:       s.tokenFile(t, id),
		TrustAnchorsPEM: s.anchors,
		Registry:        reg,
		Log:             slog.New(slog.DiscardHandler),
		MinBackoff:      50 * time.Millisecond,
		MaxBackoff:      200 * time.Millisecond,
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		if err := c.Run(ctx); err != nil {
			t.Errorf("run: %v", err)
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait() })
	return &proxy{Client: c, reg: reg}
}

func waitReady(t testing.TB, p *proxy) {
	t.Helper()
	select {
	case <-p.Ready():
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no certificate within 10s", p.ID())
	}
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

func value(t testing.TB, m prometheus.Metric) float64 {
	t.Helper()
	var d dto.Metric
	if err := m.Write(&d); err != nil {
		t.Fatal(err)
	}
	if d.Counter != nil {
		return d.Counter.GetValue()
	}
	return d.Gauge.GetValue()
}

// issuedCounter finds meshlet_identity_certify_issued_total in the
// service's registry.
func (s *identityServer) issuedCounter(t testing.TB) prometheus.Metric {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "meshlet_identity_certify_issued_total" {
			return prometheus.MustNewConstMetric(prometheus.NewDesc("x", "x", nil, nil), prometheus.CounterValue, mf.Metric[0].GetCounter().GetValue())
		}
	}
	t.Fatal("meshlet_identity_certify_issued_total not registered")
	return nil
}
