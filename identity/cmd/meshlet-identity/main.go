// Command meshlet-identity is the mesh's certificate authority: it signs
// SPIFFE X.509 SVIDs for proxies that prove their identity with a
// ServiceAccount token (Kubernetes) or a join token (local mode).
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshlet/meshlet/identity"
	"github.com/meshlet/meshlet/internal/version"
)

func main() {
	var (
		cfg      identity.Config
		logLevel string
		showVer  bool
	)
	fs := flag.NewFlagSet("meshlet-identity", flag.ExitOnError)
	fs.StringVar(&cfg.Addr, "addr", ":8080", "gRPC listen address")
	fs.StringVar(&cfg.AdminAddr, "admin-addr", ":9990", "admin listen address (/metrics, /ready, /live)")
	fs.StringVar(&cfg.TrustDomain, "trust-domain", "cluster.local", "trust domain of the issued SPIFFE IDs")
	fs.StringVar(&cfg.Mode, "mode", identity.ModeKubernetes, "how proxies prove their identity: kubernetes (TokenReview) or local (join tokens)")
	fs.StringVar(&cfg.Issuer.AnchorsFile, "trust-anchors-file", "/var/run/meshlet/identity/ca.crt", "PEM trust anchor certificate(s)")
	fs.StringVar(&cfg.Issuer.CertFile, "issuer-cert-file", "/var/run/meshlet/identity/issuer.crt", "PEM issuer certificate (then any intermediates)")
	fs.StringVar(&cfg.Issuer.KeyFile, "issuer-key-file", "/var/run/meshlet/identity/issuer.key", "PEM issuer private key")
	fs.DurationVar(&cfg.ReloadInterval, "reload-interval", identity.DefaultReloadInterval, "how often the issuer and join tokens files are checked for changes")
	fs.DurationVar(&cfg.Lifetime, "cert-lifetime", identity.DefaultLifetime, "lifetime of issued certificates")
	fs.DurationVar(&cfg.Backdate, "cert-backdate", identity.DefaultBackdate, "how far NotBefore is set in the past, for clock skew (negative: none)")
	fs.StringVar(&cfg.JoinTokensFile, "join-tokens-file", "", "join tokens file, one \"<token> <spiffe-id>\" per line (local mode)")
	fs.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig path (kubernetes mode); empty: in-cluster configuration")
	fs.StringVar(&cfg.Audience, "audience", identity.DefaultAudience, "audience the ServiceAccount tokens must carry")
	fs.BoolVar(&cfg.TLS, "tls", false, "serve Certify over TLS with a certificate issued to -server-identity (proxies verify it with their trust anchors)")
	fs.StringVar(&cfg.ServerIdentity, "server-identity", "", "SPIFFE ID of meshlet-identity's own certificate (default spiffe://<trust-domain>/ns/meshlet/sa/meshlet-identity)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fs.BoolVar(&showVer, "version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if showVer {
		fmt.Println(version.Version)
		return
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "meshlet-identity: -log-level %q: %v\n", logLevel, err)
		os.Exit(2)
	}
	cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := identity.Run(ctx, cfg); err != nil {
		cfg.Log.Error("meshlet-identity failed", "error", err)
		os.Exit(1)
	}
}
