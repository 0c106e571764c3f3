// Command meshlet-destination serves service discovery to meshlet proxies:
// endpoints from Kubernetes (or, for `meshctl dev`, from a YAML file),
// streamed over gRPC. See docs/destination.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/meshlet/meshlet/destination"
	"github.com/meshlet/meshlet/internal/version"
)

func main() {
	var cfg destination.Config
	var logLevel string
	cmd := &cobra.Command{
		Use:           "meshlet-destination",
		Short:         "Serve meshlet service discovery over gRPC",
		Version:       version.Version,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args:          cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var level slog.Level
			if err := level.UnmarshalText([]byte(logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return destination.Run(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.GRPCAddr, "grpc-addr", ":8086", "address of the Destination gRPC API")
	f.StringVar(&cfg.AdminAddr, "admin-addr", ":9990", "address of /metrics, /ready and /live")
	f.StringVar(&cfg.Source, "source", destination.SourceKubernetes, "where endpoints come from: kubernetes or file")
	f.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig file (default: in-cluster configuration)")
	f.StringVar(&cfg.ClusterDomain, "cluster-domain", "cluster.local", "DNS suffix of service names")
	f.StringVar(&cfg.TrustDomain, "trust-domain", "cluster.local", "SPIFFE trust domain of meshed pods")
	f.StringVar(&cfg.OpaquePorts, "default-opaque-ports", destination.DefaultOpaquePorts, "ports that are opaque on Services and Pods without a config.meshlet.io/opaque-ports annotation")
	f.StringVar(&cfg.File, "file", "", "YAML endpoints file for --source=file")
	f.DurationVar(&cfg.FilePollInterval, "file-poll-interval", destination.DefaultFilePollInterval, "how often the file is checked for changes")
	f.IntVar(&cfg.QueueSize, "queue-size", destination.DefaultQueueSize, "per-stream queue of unsent updates; a stream that fills it is ended")
	f.StringVar(&cfg.TLSCertFile, "tls-cert-file", "", "PEM certificate: serve the API over TLS 1.3 (re-read on change)")
	f.StringVar(&cfg.TLSKeyFile, "tls-key-file", "", "PEM private key of --tls-cert-file")
	f.BoolVar(&cfg.Pprof, "pprof", false, "serve /debug/pprof/ on the admin address")
	f.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := cmd.ExecuteContext(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "meshlet-destination:", err)
		os.Exit(1)
	}
}
