package identity

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/keepalive"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/meshlet/meshlet/identity/api/identitypb"
)

// maxRequestSize bounds a Certify request on the wire.
const maxRequestSize = MaxTokenSize + MaxCSRSize + 4<<10

// Server is a configured meshlet-identity: the issuer and authenticator are
// loaded, nothing is listening yet.
type Server struct {
	cfg     Config
	issuer  *IssuerWatcher
	tokens  *JoinTokens // ModeLocal only
	service *Service
	self    *selfCert // Config.TLS only
}

// NewServer applies defaults, validates cfg and loads the issuer and (in
// local mode) the join tokens; it fails if either is unusable.
func NewServer(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
		cfg.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	td, _ := spiffeid.TrustDomainFromString(cfg.TrustDomain) // checked by Validate
	m := NewMetrics(cfg.Registry)
	iw, err := NewIssuerWatcher(cfg.Issuer, m, cfg.Log)
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, issuer: iw}
	if cfg.TLS {
		s.self, err = newSelfCert(spiffeid.RequireFromString(cfg.ServerIdentity), iw, effectiveBackdate(cfg.Backdate))
		if err != nil {
			return nil, err
		}
	}
	var auth Authenticator
	switch cfg.Mode {
	case ModeLocal:
		s.tokens, err = NewJoinTokens(cfg.JoinTokensFile, td, m, cfg.Log)
		if err != nil {
			return nil, err
		}
		auth = s.tokens
	case ModeKubernetes:
		client := cfg.KubeClient
		if client == nil {
			client, err = kubeClient(cfg)
			if err != nil {
				return nil, err
			}
		}
		auth = &TokenReviewer{Client: client, TrustDomain: td, Audience: cfg.Audience}
	}
	s.service, err = NewService(ServiceConfig{
		TrustDomain:   td,
		Authenticator: auth,
		Issuer:        iw,
		Metrics:       m,
		Log:           cfg.Log,
		Lifetime:      cfg.Lifetime,
		Backdate:      cfg.Backdate,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

func kubeClient(cfg Config) (kubernetes.Interface, error) {
	var (
		rc  *rest.Config
		err error
	)
	if cfg.Kubeconfig == "" {
		rc, err = rest.InClusterConfig()
	} else {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
	}
	if err != nil {
		return nil, fmt.Errorf("identity: kubernetes client config: %w", err)
	}
	return newKubeClient(rc, cfg.KubeQPS, cfg.KubeBurst)
}

// newKubeClient applies the rate limits: client-go's defaults (5 QPS,
// burst 10) would make 1,000 proxies renewing together wait 200 s for their
// TokenReviews.
func newKubeClient(rc *rest.Config, qps float32, burst int) (kubernetes.Interface, error) {
	rc = rest.CopyConfig(rc)
	rc.QPS, rc.Burst = qps, burst
	rc.UserAgent = "meshlet-identity"
	c, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("identity: kubernetes client: %w", err)
	}
	return c, nil
}

// Run is meshlet-identity: it listens on cfg.Addr and cfg.AdminAddr and
// serves until ctx ends.
func Run(ctx context.Context, cfg Config) error {
	s, err := NewServer(cfg)
	if err != nil {
		return err
	}
	lis, err := net.Listen("tcp", s.cfg.Addr)
	if err != nil {
		return fmt.Errorf("identity: listen: %w", err)
	}
	admin, err := net.Listen("tcp", s.cfg.AdminAddr)
	if err != nil {
		lis.Close()
		return fmt.Errorf("identity: listen admin: %w", err)
	}
	return s.Serve(ctx, lis, admin)
}

// Serve serves gRPC on lis and the admin endpoints on admin until ctx ends,
// then stops both (letting in-flight Certify calls finish for up to 5s). It
// closes the listeners.
func (s *Server) Serve(ctx context.Context, lis, admin net.Listener) error {
	opts := []grpc.ServerOption{
		// A proxy calls once a day per certificate; keep idle connections
		// from piling up on a busy cluster.
		grpc.KeepaliveParams(keepalive.ServerParameters{MaxConnectionIdle: 5 * time.Minute}),
		// A request is a token and a CSR of at most 16 KiB each; refuse
		// anything much larger before it is buffered (default 4 MiB).
		grpc.MaxRecvMsgSize(maxRequestSize),
	}
	if s.self != nil {
		opts = append(opts, grpc.Creds(credentials.NewTLS(s.self.tlsConfig())))
	}
	gs := grpc.NewServer(opts...)
	identitypb.RegisterIdentityServer(gs, s.service)

	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(s.cfg.Registry, promhttp.HandlerOpts{Registry: s.cfg.Registry}))
	mux.HandleFunc("/live", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/ready", func(w http.ResponseWriter, _ *http.Request) {
		if err := s.Ready(); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() { s.issuer.Run(ctx, s.cfg.ReloadInterval) })
	if s.tokens != nil {
		wg.Go(func() { s.tokens.Run(ctx, s.cfg.ReloadInterval) })
	}
	errc := make(chan error, 2)
	wg.Go(func() { errc <- gs.Serve(lis) })
	wg.Go(func() {
		if err := hs.Serve(admin); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
			return
		}
		errc <- nil
	})
	s.cfg.Log.Info("identity: serving", "grpc", lis.Addr().String(), "admin", admin.Addr().String(),
		"mode", s.cfg.Mode, "trust_domain", s.cfg.TrustDomain, "tls", s.self != nil)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("identity: serve: %w", err)
	}
	cancel()
	stopped := make(chan struct{})
	go func() { gs.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		gs.Stop()
		<-stopped
	}
	sctx, scancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer scancel()
	_ = hs.Shutdown(sctx)
	wg.Wait()
	return err
}

// Ready reports why the server cannot issue certificates, or nil: the
// issuer in use must not have expired.
func (s *Server) Ready() error {
	is := s.issuer.Current()
	if is == nil {
		return errors.New("identity: no issuer loaded")
	}
	if !time.Now().Before(is.cert.NotAfter) {
		return fmt.Errorf("identity: issuer expired at %s", is.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
