package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/meshlet/meshlet/internal/version"
	"github.com/meshlet/meshlet/proxy/admin"
	"github.com/meshlet/meshlet/proxy/balance"
	"github.com/meshlet/meshlet/proxy/drain"
	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

// Run starts the proxy and serves until ctx ends, then shuts down
// gracefully (see Proxy.Serve). It returns nil after a clean shutdown.
func Run(ctx context.Context, cfg Config) error {
	p, err := New(cfg)
	if err != nil {
		return err
	}
	return p.Serve(ctx)
}

// Proxy is a running meshlet-proxy: its listeners are bound by New and
// served by Serve.
type Proxy struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	m         *metrics
	cache     *balance.Cache
	http      HTTPServer
	serverTLS *tls.Config // nil without identity
	dialer    net.Dialer

	outLn, inLn, adminLn *net.TCPListener
	outLn6, inLn6        *net.TCPListener // IPv6 counterparts; nil when not listening
	outAddr, inAddr      netip.AddrPort   // bound addresses, for loop checks
	outAddr6             netip.AddrPort   // the IPv6 outbound listener's, if any
	own                  []string         // every bound outbound and inbound address, as ip:port

	tracker drain.Tracker
	// drainCtx ends when shutdown starts: HTTP connections finish their
	// in-flight requests and close. hardCtx ends when the grace period is
	// over: every connection still open is closed.
	drainCtx, hardCtx       context.Context
	drainCancel, hardCancel context.CancelFunc

	serving  atomic.Bool // listeners accepting
	draining atomic.Bool

	// runControlPlane runs the identity client (renewals) until its ctx
	// ends; closeControlPlane closes the destination client.
	runControlPlane   func(context.Context)
	closeControlPlane func()

	warned sync.Map // refusal reason → *atomic.Int64 (unix seconds of last warning)
}

// New validates cfg, binds the listeners and builds the proxy. The caller
// must call Serve, which releases everything when it returns.
func New(cfg Config) (_ *Proxy, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	p := &Proxy{cfg: cfg, log: cfg.Logger, reg: cfg.Registry}
	if p.log == nil {
		lvl, _ := parseLevel(cfg.LogLevel)
		p.log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	}
	if p.reg == nil {
		p.reg = prometheus.NewRegistry()
		p.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	if p.m, err = newMetrics(p.reg); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	runCP, closeCP, err := p.controlPlane()
	if err != nil {
		return nil, err
	}
	p.runControlPlane, p.closeControlPlane = runCP, closeCP
	defer func() {
		if err != nil {
			closeCP()
		}
	}()
	cfg = p.cfg // the control-plane clients filled Resolver and Source in
	resolver := cfg.Resolver
	if resolver == nil {
		resolver = &endpoint.Static{} // knows nothing: all traffic goes where it was addressed
	}
	p.cache = balance.NewCache(resolver, balance.Config{}, 0)
	defer func() {
		if err != nil {
			p.cache.Close()
		}
	}()
	if err := p.reg.Register(newBalancerCollector(p.cache)); err != nil {
		return nil, fmt.Errorf("proxy: metrics: %w", err)
	}
	if cfg.Source != nil {
		p.serverTLS = meshtls.ServerConfig(cfg.Source, meshtls.ALPNHTTP2, meshtls.ALPNHTTP1, meshtls.ALPNOpaque)
	}
	p.dialer = net.Dialer{KeepAlive: 15 * time.Second}
	p.drainCtx, p.drainCancel = context.WithCancel(context.Background())
	p.hardCtx, p.hardCancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			p.drainCancel()
			p.hardCancel()
		}
	}()
	if cfg.NewHTTP != nil {
		p.http, err = cfg.NewHTTP(HTTPDeps{Config: &p.cfg, Registry: p.reg, Balancers: p.cache, Source: cfg.Source, Logger: p.log})
		if err != nil {
			return nil, fmt.Errorf("proxy: http layer: %w", err)
		}
		defer func() {
			if err != nil {
				p.http.Close()
			}
		}()
	}
	if err := p.listen(); err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Proxy) listen() error {
	var lns []*net.TCPListener
	for _, l := range []struct {
		name string
		addr string
		ln   **net.TCPListener
	}{{"outbound", p.cfg.OutboundAddr, &p.outLn}, {"inbound", p.cfg.InboundAddr, &p.inLn}, {"admin", p.cfg.AdminAddr, &p.adminLn}} {
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			for _, o := range lns {
				o.Close()
			}
			return fmt.Errorf("proxy: %s listener: %w", l.name, err)
		}
		*l.ln = ln.(*net.TCPListener)
		lns = append(lns, *l.ln)
	}
	p.outAddr = unmapped(p.outLn.Addr().(*net.TCPAddr).AddrPort())
	p.inAddr = unmapped(p.inLn.Addr().(*net.TCPAddr).AddrPort())
	p.own = []string{p.outAddr.String(), p.inAddr.String()}
	if p.cfg.IPv6 {
		if err := p.listen6(); err != nil {
			for _, o := range lns {
				o.Close()
			}
			return err
		}
	}
	return nil
}

// listen6 binds the IPv6 counterparts of the outbound and inbound
// listeners. A host without IPv6 is not an error: only IPv4 is served, and
// ip6tables capture (which needs the same kernel support) is skipped too.
func (p *Proxy) listen6() error {
	for _, l := range []struct {
		name string
		v4   netip.AddrPort
		ln   **net.TCPListener
	}{{"outbound", p.outAddr, &p.outLn6}, {"inbound", p.inAddr, &p.inLn6}} {
		var addr netip.Addr
		switch l.v4.Addr() {
		case netip.AddrFrom4([4]byte{127, 0, 0, 1}):
			addr = netip.IPv6Loopback()
		case netip.IPv4Unspecified():
			addr = netip.IPv6Unspecified()
		default:
			continue // an explicit address: no counterpart
		}
		a := netip.AddrPortFrom(addr, l.v4.Port())
		ln, err := net.ListenTCP("tcp6", net.TCPAddrFromAddrPort(a))
		if err != nil {
			if ipv6Unavailable(err) {
				p.log.Info("IPv6 unavailable: only IPv4 connections are served", "listener", l.name, "addr", a.String(), "err", err)
				continue
			}
			if p.outLn6 != nil {
				p.outLn6.Close()
			}
			return fmt.Errorf("proxy: %s IPv6 listener (--ipv6=false to skip it): %w", l.name, err)
		}
		*l.ln = ln
		p.own = append(p.own, a.String())
		if l.name == "outbound" {
			p.outAddr6 = a
		}
	}
	return nil
}

func ipv6Unavailable(err error) bool {
	return errors.Is(err, syscall.EAFNOSUPPORT) || errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.EPROTONOSUPPORT)
}

// ownAddr reports whether addr (ip:port) is one of the proxy's outbound or
// inbound listeners: a connection there would loop.
func (p *Proxy) ownAddr(addr string) bool { return slices.Contains(p.own, addr) }

// closeListeners stops the outbound and inbound listeners.
func (p *Proxy) closeListeners() {
	for _, ln := range []*net.TCPListener{p.outLn, p.inLn, p.outLn6, p.inLn6} {
		if ln != nil {
			ln.Close()
		}
	}
}

func unmapped(a netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
}

// OutboundAddr, InboundAddr and AdminAddr return the bound listener
// addresses (useful when configured with port 0).
func (p *Proxy) OutboundAddr() netip.AddrPort { return p.outAddr }

// InboundAddr returns the inbound listener's address.
func (p *Proxy) InboundAddr() netip.AddrPort { return p.inAddr }

// AdminAddr returns the admin listener's address.
func (p *Proxy) AdminAddr() netip.AddrPort {
	return unmapped(p.adminLn.Addr().(*net.TCPAddr).AddrPort())
}

// Registry returns the registry holding every metric of the proxy.
func (p *Proxy) Registry() *prometheus.Registry { return p.reg }

// Serve accepts connections until ctx ends, then shuts down: /ready turns
// 503, the listeners close (new connections are refused), HTTP
// connections finish their in-flight requests, and opaque connections may
// go on for up to ShutdownGrace; whatever is still open then is closed.
// It returns nil after a clean shutdown.
func (p *Proxy) Serve(ctx context.Context) error {
	adminSrv := &http.Server{
		Handler:           admin.Handler(p.reg, p.ready, p.cfg.AdminPprof),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	cpCtx, cpCancel := context.WithCancel(context.Background())
	var loops sync.WaitGroup
	loops.Add(4)
	go func() { defer loops.Done(); p.runControlPlane(cpCtx) }()
	go func() {
		defer loops.Done()
		if err := adminSrv.Serve(p.adminLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.log.Error("admin server stopped", "err", err)
		}
	}()
	go func() { defer loops.Done(); p.accept(p.outLn, Outbound, p.outbound) }()
	go func() { defer loops.Done(); p.accept(p.inLn, Inbound, p.inbound) }()
	for _, l := range []struct {
		ln *net.TCPListener
		d  Direction
		h  func(*net.TCPConn)
	}{{p.outLn6, Outbound, p.outbound}, {p.inLn6, Inbound, p.inbound}} {
		if l.ln != nil {
			loops.Add(1)
			go func() { defer loops.Done(); p.accept(l.ln, l.d, l.h) }()
		}
	}
	p.serving.Store(true)
	p.log.Info("meshlet-proxy started", "version", version.Version,
		"outbound", p.outAddr.String(), "inbound", p.inAddr.String(), "admin", p.AdminAddr().String(),
		"identity", p.cfg.Identity, "mtls", p.cfg.Source != nil, "http", p.http != nil,
		"pod", p.cfg.PodNamespace+"/"+p.cfg.PodName, "service_account", p.cfg.ServiceAccount)

	<-ctx.Done()
	p.draining.Store(true)
	p.log.Info("shutting down: draining connections", "grace", p.cfg.ShutdownGrace, "open", p.tracker.Active())
	p.closeListeners()
	p.tracker.Close()
	p.drainCancel()

	graceCtx, cancel := context.WithTimeout(context.Background(), p.cfg.ShutdownGrace)
	err := p.tracker.Wait(graceCtx)
	cancel()
	if err != nil {
		p.log.Warn("grace period over: closing the remaining connections", "open", p.tracker.Active())
	}
	p.hardCancel()
	if p.http != nil {
		p.http.Close()
	}
	p.tracker.Wait(context.Background()) //nolint:errcheck // no deadline: every connection ends with hardCtx
	shutCtx, cancel := context.WithTimeout(context.Background(), time.Second)
	adminSrv.Shutdown(shutCtx) //nolint:errcheck // best effort; the process is exiting
	cancel()
	adminSrv.Close()
	cpCancel()
	loops.Wait()
	p.cache.Close()
	p.closeControlPlane()
	p.log.Info("meshlet-proxy stopped")
	return nil
}

// ready is /ready's check.
func (p *Proxy) ready() error {
	switch {
	case p.draining.Load():
		return errors.New("shutting down")
	case !p.serving.Load():
		return errors.New("listeners not serving yet")
	}
	if p.cfg.Source != nil {
		svid, err := p.cfg.Source.GetX509SVID()
		if err != nil {
			return fmt.Errorf("no identity yet: %w", err)
		}
		if svid == nil || len(svid.Certificates) == 0 {
			return errors.New("no identity yet")
		}
	}
	return nil
}

// accept runs a listener's accept loop until the listener is closed.
func (p *Proxy) accept(ln *net.TCPListener, d Direction, handle func(*net.TCPConn)) {
	var backoff time.Duration
	for {
		c, err := ln.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors or similar: wait rather than spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			p.log.Warn("accept failed", "direction", d.String(), "err", err, "retry_in", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		if !p.tracker.Go(func() { handle(c) }) {
			c.Close()
			return
		}
	}
}

// warnRefused counts a refusal and logs it at warn level at most once a minute per reason
// (every one is counted in meshlet_proxy_refused_total), and at debug
// level otherwise, so a misconfiguration is visible without flooding.
func (p *Proxy) warnRefused(d Direction, reason, msg string, args ...any) {
	p.m.refuse(d, reason)
	v, ok := p.warned.Load(reason)
	if !ok {
		v, _ = p.warned.LoadOrStore(reason, new(atomic.Int64))
	}
	last := v.(*atomic.Int64)
	now := time.Now().Unix()
	if prev := last.Load(); now-prev >= 60 && last.CompareAndSwap(prev, now) {
		p.log.Warn(msg, append(args, "direction", d.String(), "reason", reason)...)
		return
	}
	if p.log.Enabled(context.Background(), slog.LevelDebug) {
		p.log.Debug(msg, append(args, "direction", d.String(), "reason", reason)...)
	}
}
