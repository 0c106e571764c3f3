// Command meshlet-identity is the mesh's certificate authority: it signs
// SPIFFE X.509 SVIDs for proxies that prove their identity with a
// ServiceAccount token (Kubernetes) or a join token (local mode).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/meshlet/meshlet/identity"
	"github.com/meshlet/meshlet/internal/version"
)

// options are the command line: the service's Config and the process's own
// settings.
type options struct {
	cfg      identity.Config
	logLevel slog.Level
	version  bool
}

// parseFlags binds the command line to options; errors (and -help) are
// written to stderr.
func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	cfg := &o.cfg
	fs := flag.NewFlagSet("meshlet-identity", flag.ContinueOnError)
	fs.SetOutput(stderr)
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
	cfg.KubeQPS = identity.DefaultKubeQPS
	fs.Func("kube-api-qps", fmt.Sprintf("TokenReview requests per second to the API server (default %d)", identity.DefaultKubeQPS), func(v string) error {
		f, err := strconv.ParseFloat(v, 32)
		cfg.KubeQPS = float32(f)
		return err
	})
	fs.IntVar(&cfg.KubeBurst, "kube-api-burst", identity.DefaultKubeBurst, "burst of TokenReview requests above -kube-api-qps")
	fs.StringVar(&cfg.Audience, "audience", identity.DefaultAudience, "audience the ServiceAccount tokens must carry")
	fs.BoolVar(&cfg.TLS, "tls", false, "serve Certify over TLS with a certificate issued to -server-identity (proxies verify it with their trust anchors)")
	fs.StringVar(&cfg.ServerIdentity, "server-identity", "", "SPIFFE ID of meshlet-identity's own certificate (default spiffe://<trust-domain>/ns/meshlet/sa/meshlet-identity)")
	fs.TextVar(&o.logLevel, "log-level", slog.LevelInfo, "debug, info, warn or error")
	fs.BoolVar(&o.version, "version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		err := fmt.Errorf("meshlet-identity: unexpected arguments %q", fs.Args())
		fmt.Fprintln(stderr, err)
		return o, err
	}
	return o, nil
}

func main() {
	o, err := parseFlags(os.Args[1:], os.Stderr)
	if err == flag.ErrHelp {
		return
	}
	if err != nil {
		os.Exit(2) // parseFlags has said why
	}
	if o.version {
		fmt.Println(version.Version)
		return
	}
	o.cfg.Log = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := identity.Run(ctx, o.cfg); err != nil {
		o.cfg.Log.Error("meshlet-identity failed", "error", err)
		os.Exit(1)
	}
}
