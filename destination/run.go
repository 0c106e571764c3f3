package destination

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
)

// Sources of endpoints.
const (
	SourceKubernetes = "kubernetes"
	SourceFile       = "file"
)

// Config configures the meshlet-destination service; the flags of
// `meshlet-destination` bind to it.
type Config struct {
	// GRPCAddr is where the Destination API listens; "" means ":8086".
	GRPCAddr string
	// AdminAddr serves /metrics, /ready and /live; "" means ":9990".
	AdminAddr string
	// Source is SourceKubernetes (the default when "") or SourceFile.
	Source string
	// Kubeconfig is the kubeconfig file for SourceKubernetes; "" means the
	// in-cluster configuration.
	Kubeconfig string
	// ClusterDomain, TrustDomain and OpaquePorts: see KubeConfig.
	ClusterDomain, TrustDomain, OpaquePorts string
	// File and FilePollInterval: see FileConfig.
	File             string
	FilePollInterval time.Duration
	// QueueSize: see ServerConfig.
	QueueSize int
	// TLS, when set, serves the API over TLS (e.g. with the destination's
	// own SVID). nil means TLSCertFile/TLSKeyFile, or plaintext without them.
	TLS *tls.Config
	// TLSCertFile and TLSKeyFile (PEM) serve the API over TLS 1.3; the files
	// are re-read when they change. Both or neither.
	TLSCertFile, TLSKeyFile string
	// Pprof serves net/http/pprof under /debug/pprof/ on the admin address
	// (off by default: profiles reveal internals and cost CPU).
	Pprof bool
	// Logger: nil means slog.Default().
	Logger *slog.Logger
	// OnListen, when set, is called with the bound addresses once both
	// listeners are open (tests and `meshctl dev` use ":0").
	OnListen func(grpcAddr, adminAddr net.Addr)
}

// Validate reports missing or inconsistent settings.
func (c *Config) Validate() error {
	switch c.Source {
	case "", SourceKubernetes:
		if c.File != "" {
			return errors.New("destination: a file is set but the source is kubernetes (use --source=file)")
		}
	case SourceFile:
		if c.File == "" {
			return errors.New("destination: the file source needs a file (--file)")
		}
	default:
		return fmt.Errorf("destination: unknown source %q (want %s or %s)", c.Source, SourceKubernetes, SourceFile)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return errors.New("destination: TLS needs both a certificate file and a key file")
	}
	if c.QueueSize < 0 {
		return errors.New("destination: queue size must not be negative")
	}
	return nil
}

// backendRunner is a Backend with a lifetime.
type backendRunner interface {
	Backend
	Run(ctx context.Context) error
	Ready() bool
}

// Run serves the Destination API until ctx ends. The gRPC listener opens at
// once, but streams get UNAVAILABLE until the backend is ready (/ready
// tells the same), so a proxy never sees a half-synced cluster.
func Run(ctx context.Context, cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.GRPCAddr == "" {
		cfg.GRPCAddr = ":8086"
	}
	if cfg.AdminAddr == "" {
		cfg.AdminAddr = ":9990"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.TLS == nil && cfg.TLSCertFile != "" {
		tc, err := serverTLS(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return err
		}
		cfg.TLS = tc
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var backend backendRunner
	switch cfg.Source {
	case SourceFile:
		fb, err := NewFileBackend(FileConfig{Path: cfg.File, PollInterval: cfg.FilePollInterval, Registry: reg, Logger: cfg.Logger})
		if err != nil {
			return err
		}
		backend = fb
	default:
		rc, err := clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return fmt.Errorf("destination: kubernetes client config: %w", err)
		}
		cs, err := kubernetes.NewForConfig(rc)
		if err != nil {
			return fmt.Errorf("destination: kubernetes client: %w", err)
		}
		kb, err := NewKubeBackend(KubeConfig{Client: cs, ClusterDomain: cfg.ClusterDomain, TrustDomain: cfg.TrustDomain, OpaquePorts: cfg.OpaquePorts, Registry: reg, Logger: cfg.Logger})
		if err != nil {
			return err
		}
		backend = kb
	}
	srv, err := NewServer(ServerConfig{Backend: backend, QueueSize: cfg.QueueSize, Logger: cfg.Logger})
	if err != nil {
		return err
	}

	var lc net.ListenConfig
	gl, err := lc.Listen(ctx, "tcp", cfg.GRPCAddr)
	if err != nil {
		return fmt.Errorf("destination: %w", err)
	}
	al, err := lc.Listen(ctx, "tcp", cfg.AdminAddr)
	if err != nil {
		gl.Close()
		return fmt.Errorf("destination: %w", err)
	}
	opts := []grpc.ServerOption{
		// Proxies ping every 30s to notice a dead control plane.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if cfg.TLS != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(cfg.TLS)))
	}
	gs := grpc.NewServer(opts...)
	pb.RegisterDestinationServer(gs, srv)
	admin := &http.Server{Handler: adminHandler(reg, backend.Ready, cfg.Pprof), ReadHeaderTimeout: 5 * time.Second}
	if cfg.OnListen != nil {
		cfg.OnListen(gl.Addr(), al.Addr())
	}
	cfg.Logger.Info("destination: serving", "grpc", gl.Addr().String(), "admin", al.Addr().String(), "source", cfg.Source)

	// The first of the three to fail (or ctx) stops the others.
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	errs := make(chan error, 3)
	go func() { errs <- backend.Run(rctx) }()
	go func() { errs <- gs.Serve(gl) }()
	go func() {
		if err := admin.Serve(al); !errors.Is(err, http.ErrServerClosed) {
			errs <- err
			return
		}
		errs <- nil
	}()
	var first error
	select {
	case <-rctx.Done():
	case first = <-errs:
	}
	stop()
	// Streams never end on their own: Stop cancels them, and the clients
	// reconnect to another replica (or to this one, restarted).
	gs.Stop()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = admin.Shutdown(sctx)
	for range 2 {
		if err := <-errs; first == nil {
			first = err
		}
	}
	if first == nil && ctx.Err() == nil {
		first = errors.New("destination: stopped unexpectedly")
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("destination: %w", first)
}

func adminHandler(reg *prometheus.Registry, ready func() bool, profiling bool) http.Handler {
	mux := http.NewServeMux()
	if profiling {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	mux.HandleFunc("GET /live", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) {
		if !ready() {
			http.Error(w, "not ready: backend still syncing", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	return mux
}
