package destination

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// errNotReady is returned to streams that arrive before the informers have
// synced; the server maps it to UNAVAILABLE so clients retry.
var errNotReady = errors.New("destination: not ready: caches are still syncing")

// KubeConfig configures the Kubernetes backend.
type KubeConfig struct {
	// Client talks to the API server. Required.
	Client kubernetes.Interface
	// ClusterDomain is the DNS suffix of service names; "" means
	// "cluster.local".
	ClusterDomain string
	// TrustDomain is the SPIFFE trust domain of meshed pods' identities;
	// "" means "cluster.local".
	TrustDomain string
	// OpaquePorts is the port list (e.g. "3306,8000-8100") that is opaque
	// on Services and Pods without an opaque-ports annotation; "" means
	// DefaultOpaquePorts.
	OpaquePorts string
	// ResyncPeriod re-delivers every cached object this often (a safety
	// net; events carry the changes). 0 disables it.
	ResyncPeriod time.Duration
	// Registry receives the metrics; nil means a private registry.
	Registry prometheus.Registerer
	// Logger receives warnings about bad objects; nil means slog.Default().
	Logger *slog.Logger
}

// KubeBackend serves endpoints from Kubernetes Services, EndpointSlices and
// Pods, through one shared informer per kind for the whole cluster: the
// number of streams never changes what is watched.
type KubeBackend struct {
	cfg     KubeConfig
	m       *metrics
	factory informers.SharedInformerFactory

	services, slices, pods cache.SharedIndexInformer

	broker      *broker[kubeTopic]
	synced      atomic.Bool
	opaquePorts portSet

	// Events only mark what changed; one worker recomputes, so handlers
	// never wait on streams and bursts of events coalesce.
	mu    sync.Mutex
	dirty map[depKey]time.Time
	wake  chan struct{}
}

// NewKubeBackend sets up the informers; Run starts them.
func NewKubeBackend(cfg KubeConfig) (*KubeBackend, error) {
	if cfg.Client == nil {
		return nil, errors.New("destination: KubeConfig.Client is required")
	}
	if cfg.ClusterDomain == "" {
		cfg.ClusterDomain = "cluster.local"
	}
	domain, err := checkDNSName(cfg.ClusterDomain)
	if err != nil {
		return nil, fmt.Errorf("destination: cluster domain: %w", err)
	}
	cfg.ClusterDomain = domain
	if cfg.TrustDomain == "" {
		cfg.TrustDomain = "cluster.local"
	}
	if _, err := checkDNSName(cfg.TrustDomain); err != nil {
		return nil, fmt.Errorf("destination: trust domain: %w", err)
	}
	if cfg.OpaquePorts == "" {
		cfg.OpaquePorts = DefaultOpaquePorts
	}
	opaque, err := parsePortSet(cfg.OpaquePorts)
	if err != nil {
		return nil, fmt.Errorf("destination: default opaque ports: %w", err)
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	k := &KubeBackend{
		opaquePorts: opaque,
		cfg:         cfg,
		m:           newMetrics(cfg.Registry),
		dirty:       make(map[depKey]time.Time),
		wake:        make(chan struct{}, 1),
	}
	k.broker = newBroker(k.compute, k.m)
	k.factory = informers.NewSharedInformerFactoryWithOptions(cfg.Client, cfg.ResyncPeriod, informers.WithTransform(trim))
	k.services = k.factory.Core().V1().Services().Informer()
	k.slices = k.factory.Discovery().V1().EndpointSlices().Informer()
	k.pods = k.factory.Core().V1().Pods().Informer()
	if err := k.services.AddIndexers(cache.Indexers{indexClusterIP: indexByClusterIP}); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	if err := k.slices.AddIndexers(cache.Indexers{indexService: indexByService, indexSlicePod: indexSliceByPod}); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	if err := k.pods.AddIndexers(cache.Indexers{indexPodIP: indexByPodIP}); err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandlerFuncs
	}{
		{k.services, k.handler("service", serviceDeps)},
		{k.slices, k.handler("endpointslice", sliceDeps)},
		{k.pods, k.podHandler()},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return nil, fmt.Errorf("destination: %w", err)
		}
	}
	return k, nil
}

// Run starts the informers, waits for their first sync and recomputes
// followed authorities as events arrive, until ctx ends.
func (k *KubeBackend) Run(ctx context.Context) error {
	k.factory.Start(ctx.Done())
	defer k.factory.Shutdown()
	for typ, ok := range k.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("destination: cache of %v did not sync", typ)
		}
	}
	k.synced.Store(true)
	k.m.backendReady.Set(1)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-k.wake:
			k.flush()
		}
	}
}

// Ready reports whether the informers have synced.
func (k *KubeBackend) Ready() bool { return k.synced.Load() }

// flush recomputes every topic depending on what changed since the last
// flush; the lag metric counts from the earliest of those events.
func (k *KubeBackend) flush() {
	k.mu.Lock()
	dirty := k.dirty
	k.dirty = make(map[depKey]time.Time)
	k.mu.Unlock()
	if len(dirty) == 0 {
		return
	}
	var earliest time.Time
	deps := make([]depKey, 0, len(dirty))
	for d, at := range dirty {
		deps = append(deps, d)
		if earliest.IsZero() || at.Before(earliest) {
			earliest = at
		}
	}
	k.broker.invalidate(deps, earliest)
}

func (k *KubeBackend) mark(deps []depKey) {
	if len(deps) == 0 {
		return
	}
	now := time.Now()
	k.mu.Lock()
	for _, d := range deps {
		if _, ok := k.dirty[d]; !ok {
			k.dirty[d] = now
		}
	}
	k.mu.Unlock()
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

func (k *KubeBackend) handler(kind string, deps func(obj any) []depKey) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			k.m.events.WithLabelValues(kind).Inc()
			k.mark(deps(obj))
		},
		UpdateFunc: func(old, cur any) {
			k.m.events.WithLabelValues(kind).Inc()
			k.mark(append(deps(old), deps(cur)...))
		},
		DeleteFunc: func(obj any) {
			k.m.events.WithLabelValues(kind).Inc()
			k.mark(deps(unwrap(obj)))
		},
	}
}

func (k *KubeBackend) podHandler() cache.ResourceEventHandlerFuncs {
	h := k.handler("pod", podDeps)
	h.UpdateFunc = func(old, cur any) {
		k.m.events.WithLabelValues("pod").Inc()
		o, ok1 := old.(*corev1.Pod)
		c, ok2 := cur.(*corev1.Pod)
		if ok1 && ok2 && !podChanged(o, c) {
			// Most pod updates are status changes the translation does not
			// read (readiness arrives through EndpointSlices).
			return
		}
		k.mark(append(podDeps(old), podDeps(cur)...))
	}
	return h
}

func serviceDeps(obj any) []depKey {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil
	}
	deps := []depKey{svcDep(svc.Namespace, svc.Name)}
	for _, ip := range serviceIPs(svc) {
		deps = append(deps, depKey("ip/"+ip))
	}
	return deps
}

func sliceDeps(obj any) []depKey {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil
	}
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		return []depKey{svcDep(s.Namespace, name)}
	}
	return nil
}

func podDeps(obj any) []depKey {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil
	}
	deps := []depKey{podDep(p.Namespace, p.Name)}
	for _, ip := range podIPs(p) {
		deps = append(deps, depKey("ip/"+ip))
	}
	return deps
}

func (k *KubeBackend) metrics() *metrics { return k.m }

func (k *KubeBackend) subscribe(a Authority, contextNS string, s *subscriber) (func(), error) {
	t, err := kubeTarget(a, contextNS, k.cfg.ClusterDomain)
	if err != nil {
		return nil, err
	}
	if !k.synced.Load() {
		return nil, errNotReady
	}
	return k.broker.subscribe(t, s), nil
}
