// Command meshlet-injector is the mutating admission webhook that adds the
// meshlet proxy to pods. See docs/injection.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/meshlet/meshlet/injector"
	"github.com/meshlet/meshlet/injector/webhook"
	"github.com/meshlet/meshlet/internal/version"
)

func main() {
	var cfg webhook.Config
	fs := flag.NewFlagSet("meshlet-injector", flag.ExitOnError)
	bindFlags(fs, &cfg)
	showVersion := fs.Bool("version", false, "print the version and exit")
	_ = fs.Parse(os.Args[1:])
	if *showVersion {
		fmt.Println(version.Version)
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := webhook.Run(ctx, cfg); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func bindFlags(fs *flag.FlagSet, c *webhook.Config) {
	fs.StringVar(&c.ListenAddr, "listen-addr", ":8443", "HTTPS address of the webhook (path /inject)")
	fs.StringVar(&c.AdminAddr, "admin-addr", ":9990", "HTTP address of /metrics, /ready and /live")
	fs.StringVar(&c.CertFile, "tls-cert-file", "/var/run/meshlet/tls/tls.crt", "serving certificate (PEM), reloaded when it changes")
	fs.StringVar(&c.KeyFile, "tls-key-file", "/var/run/meshlet/tls/tls.key", "serving key (PEM), reloaded when it changes")
	fs.DurationVar(&c.CertPollInterval, "tls-poll-interval", 0, "how often to check the certificate files (default 5s)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", "", "kubeconfig path (default: in-cluster configuration)")
	fs.StringVar(&c.MeshConfigFile, "config", "", "mesh configuration file (YAML/JSON injector.Config); flags win over it")
	fs.StringVar(&c.TrustAnchorsFile, "trust-anchors-file", "", "PEM file of the mesh's trust anchors")
	fs.StringVar(&c.LogLevel, "log-level", "info", "the injector's log level: debug, info, warn, error")
	m := &c.Mesh
	fs.StringVar(&m.ProxyImage, "proxy-image", "", "proxy image without tag (required unless in --config)")
	fs.StringVar(&m.ProxyVersion, "proxy-version", "", "proxy image tag (default: this build's version)")
	fs.StringVar(&m.ImagePullPolicy, "image-pull-policy", "", "pull policy of the injected containers (default IfNotPresent)")
	fs.StringVar(&m.ControlPlaneNamespace, "control-plane-namespace", "", "namespace of the control plane (default meshlet)")
	fs.StringVar(&m.TrustDomain, "trust-domain", "", "SPIFFE trust domain (default cluster.local)")
	fs.StringVar(&m.ClusterDomain, "cluster-domain", "", "DNS suffix of Services (default cluster.local)")
	fs.Func("sidecar", "how to add the proxy: native (init container with restartPolicy Always) or container", func(s string) error {
		m.Sidecar = injector.SidecarMode(s)
		return nil
	})
	fs.StringVar(&m.LogLevel, "proxy-log-level", "", "proxy log level (default info)")
	fs.StringVar(&m.ProxyCPURequest, "proxy-cpu-request", "", "proxy CPU request (default 50m)")
	fs.StringVar(&m.ProxyCPULimit, "proxy-cpu-limit", "", "proxy CPU limit (default none)")
	fs.StringVar(&m.ProxyMemoryRequest, "proxy-memory-request", "", "proxy memory request (default 32Mi)")
	fs.StringVar(&m.ProxyMemoryLimit, "proxy-memory-limit", "", "proxy memory limit (default 256Mi)")
	fs.StringVar(&m.OpaquePorts, "opaque-ports", "", "ports that skip protocol detection (default "+injector.DefaultOpaquePorts+")")
	fs.StringVar(&m.SkipInboundPorts, "skip-inbound-ports", "", "inbound ports no pod captures")
	fs.StringVar(&m.SkipOutboundPorts, "skip-outbound-ports", "", "outbound ports no pod captures")
	fs.BoolVar(&m.DisableIPv6Capture, "disable-ipv6-capture", false, "leave IPv6 traffic uncaptured (for dual-stack pods whose proxy listens on IPv4 only)")
	fs.Int64Var(&m.TokenExpirationSeconds, "token-expiration-seconds", 0, "lifetime of the projected ServiceAccount token (default 86400)")
}
