package webhook

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/meshlet/meshlet/injector"
)

// Config is meshlet-injector's configuration (its flags).
type Config struct {
	// ListenAddr of the HTTPS webhook (path /inject). Default ":8443".
	ListenAddr string
	// AdminAddr serves /metrics, /ready and /live over HTTP. Default ":9990".
	AdminAddr string
	// CertFile and KeyFile hold the serving certificate (PEM), re-read
	// every CertPollInterval. Required.
	CertFile, KeyFile string
	// CertPollInterval is how often the files are checked. Default 5s.
	CertPollInterval time.Duration
	// Kubeconfig is a kubeconfig path; empty uses the in-cluster config.
	Kubeconfig string
	// MeshConfigFile is a YAML or JSON file holding an injector.Config
	// (the ConfigMap meshctl install writes). Fields set in Mesh win over it.
	MeshConfigFile string
	// TrustAnchorsFile is a PEM file of trust anchors; it sets
	// Mesh.TrustAnchorsPEM when that is empty.
	TrustAnchorsFile string
	// Mesh holds the injection settings given as flags.
	Mesh injector.Config
	// LogLevel of the injector's own log: debug, info, warn, error.
	LogLevel string
}

// MeshConfig merges the config file, the trust anchors file and the flags,
// applies defaults and validates the result.
func (c Config) MeshConfig() (injector.Config, error) {
	var m injector.Config
	if c.MeshConfigFile != "" {
		b, err := os.ReadFile(c.MeshConfigFile)
		if err != nil {
			return m, fmt.Errorf("webhook: mesh config: %w", err)
		}
		if err := yaml.UnmarshalStrict(b, &m); err != nil {
			return m, fmt.Errorf("webhook: mesh config %s: %w", c.MeshConfigFile, err)
		}
	}
	overlayConfig(&m, c.Mesh)
	if c.TrustAnchorsFile != "" && m.TrustAnchorsPEM == "" {
		b, err := os.ReadFile(c.TrustAnchorsFile)
		if err != nil {
			return m, fmt.Errorf("webhook: trust anchors: %w", err)
		}
		m.TrustAnchorsPEM = string(b)
	}
	m = m.WithDefaults()
	if err := m.Validate(); err != nil {
		return m, err
	}
	return m, nil
}

// overlayConfig copies every non-zero field of src onto dst.
func overlayConfig(dst *injector.Config, src injector.Config) {
	set := func(d *string, s string) {
		if s != "" {
			*d = s
		}
	}
	set(&dst.ProxyImage, src.ProxyImage)
	set(&dst.ProxyVersion, src.ProxyVersion)
	set(&dst.ImagePullPolicy, src.ImagePullPolicy)
	set(&dst.ControlPlaneNamespace, src.ControlPlaneNamespace)
	set(&dst.TrustDomain, src.TrustDomain)
	set(&dst.ClusterDomain, src.ClusterDomain)
	set(&dst.TrustAnchorsPEM, src.TrustAnchorsPEM)
	set((*string)(&dst.Sidecar), string(src.Sidecar))
	set(&dst.LogLevel, src.LogLevel)
	set(&dst.ProxyCPURequest, src.ProxyCPURequest)
	set(&dst.ProxyCPULimit, src.ProxyCPULimit)
	set(&dst.ProxyMemoryRequest, src.ProxyMemoryRequest)
	set(&dst.ProxyMemoryLimit, src.ProxyMemoryLimit)
	set(&dst.OpaquePorts, src.OpaquePorts)
	set(&dst.SkipInboundPorts, src.SkipInboundPorts)
	set(&dst.SkipOutboundPorts, src.SkipOutboundPorts)
	if src.DisableIPv6Capture {
		dst.DisableIPv6Capture = true
	}
	if src.TokenExpirationSeconds != 0 {
		dst.TokenExpirationSeconds = src.TokenExpirationSeconds
	}
}

// Run starts meshlet-injector and serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = ":8443"
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = ":9990"
	}
	log := newLogger(cfg.LogLevel)
	mesh, err := cfg.MeshConfig()
	if err != nil {
		return err
	}
	restCfg, err := restConfig(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("webhook: kubernetes client: %w", err)
	}
	reg := prometheus.NewRegistry()
	s, err := NewServer(ServerOptions{
		Mesh: mesh, CertFile: cfg.CertFile, KeyFile: cfg.KeyFile, CertPollInterval: cfg.CertPollInterval,
		Client: client, Registry: reg, Log: log, ReloadMesh: cfg.MeshConfig,
	})
	if err != nil {
		return err
	}
	hook, err := net.Listen("tcp", cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	admin, err := net.Listen("tcp", cfg.AdminAddr)
	if err != nil {
		hook.Close()
		return fmt.Errorf("webhook: %w", err)
	}
	log.Info("meshlet-injector serving", "webhook", hook.Addr().String(), "admin", admin.Addr().String(),
		"controlPlaneNamespace", mesh.ControlPlaneNamespace, "sidecar", mesh.Sidecar)
	return s.Serve(ctx, hook, admin)
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	var (
		c   *rest.Config
		err error
	)
	if kubeconfig != "" {
		c, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		c, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: kubernetes config: %w", err)
	}
	return c, nil
}

func newLogger(level string) *slog.Logger {
	var l slog.Level
	switch strings.ToLower(level) {
	case "debug":
		l = slog.LevelDebug
	case "warn":
		l = slog.LevelWarn
	case "error":
		l = slog.LevelError
	}
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: l}))
}

// ServerOptions are what NewServer needs; tests pass a client for their
// own API server and their own registry.
type ServerOptions struct {
	Mesh              injector.Config
	CertFile, KeyFile string
	CertPollInterval  time.Duration
	Client            kubernetes.Interface
	Registry          *prometheus.Registry
	Log               *slog.Logger
	// ReloadMesh, when set, is called every CertPollInterval; a changed
	// result replaces Mesh for the following requests.
	ReloadMesh func() (injector.Config, error)
}

// Server is the webhook with its namespace cache, certificate reloader and
// admin endpoints.
type Server struct {
	handler    *Handler
	namespaces *NamespaceInformer
	certs      *CertReloader
	registry   *prometheus.Registry
	poll       time.Duration
	log        *slog.Logger
	reloadMesh func() (injector.Config, error)
}

// NewServer loads the certificate and prepares the namespace informer.
func NewServer(o ServerOptions) (*Server, error) {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.CertPollInterval <= 0 {
		o.CertPollInterval = 5 * time.Second
	}
	m := NewMetrics(o.Registry)
	certs, err := NewCertReloader(o.CertFile, o.KeyFile, func(error) { m.Errors.WithLabelValues(errTLSReload).Inc() })
	if err != nil {
		return nil, err
	}
	ns := NewNamespaceInformer(o.Client)
	return &Server{
		handler:    &Handler{Mesh: o.Mesh, Namespaces: ns, Metrics: m, Log: o.Log},
		namespaces: ns,
		certs:      certs,
		registry:   o.Registry,
		poll:       o.CertPollInterval,
		log:        o.Log,
		reloadMesh: o.ReloadMesh,
	}, nil
}

// Serve serves the webhook (TLS) on hook and the admin endpoints on admin
// until ctx ends, then shuts both down. It owns and closes the listeners.
func (s *Server) Serve(ctx context.Context, hook, admin net.Listener) error {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		// Stop the background work (also when a server failed), then wait
		// for it: the informer and both watchers end with ctx.
		cancel()
		s.namespaces.Shutdown()
		wg.Wait()
	}()

	mux := http.NewServeMux()
	mux.Handle("/inject", s.handler)
	hookSrv := &http.Server{
		Handler:           mux,
		TLSConfig:         &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: s.certs.GetCertificate},
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	adminMux := http.NewServeMux()
	adminMux.Handle("/metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	adminMux.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	adminMux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if !s.namespaces.Synced() {
			http.Error(w, "namespace cache not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	adminSrv := &http.Server{Handler: adminMux, ReadHeaderTimeout: 10 * time.Second}

	errc := make(chan error, 2)
	wg.Add(3)
	go func() {
		defer wg.Done()
		if err := adminSrv.Serve(admin); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("webhook: admin server: %w", err)
		}
	}()
	go func() {
		defer wg.Done()
		s.certs.Watch(ctx, s.poll, s.log)
	}()
	if s.reloadMesh != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			watchMesh(ctx, s.handler, s.reloadMesh, s.poll, s.handler.Metrics, s.log)
		}()
	}
	// Answer the webhook only once namespaces are known: before that, a pod
	// in an annotated namespace would be let through without its proxy.
	if err := s.namespaces.Start(ctx); err != nil {
		wg.Done()
		hook.Close()
		shutdown(adminSrv)
		return err
	}
	go func() {
		defer wg.Done()
		if err := hookSrv.ServeTLS(hook, "", ""); !errors.Is(err, http.ErrServerClosed) {
			errc <- fmt.Errorf("webhook: https server: %w", err)
		}
	}()
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shutdown(hookSrv)
	shutdown(adminSrv)
	return err
}

func shutdown(s *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = s.Shutdown(ctx)
}
