package destination

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

// DefaultFilePollInterval is how often the file backend checks its file when
// FileConfig.PollInterval is 0.
const DefaultFilePollInterval = time.Second

// FileConfig configures the file backend.
type FileConfig struct {
	// Path is the YAML file (format: FileSpec). Required; it must be valid
	// when the backend starts.
	Path string
	// PollInterval is how often the file is re-read to notice changes;
	// 0 means DefaultFilePollInterval.
	PollInterval time.Duration
	// Registry receives the metrics; nil means a private registry.
	Registry prometheus.Registerer
	// Logger receives reload errors; nil means slog.Default().
	Logger *slog.Logger
}

// FileBackend serves endpoints listed in a YAML file, for hosts without
// Kubernetes (`meshctl dev`). An authority matches a service by name (any
// port, or the service's port when it sets one), by one of its aliases, or
// — like a pod IP — by an endpoint's own address (then only that endpoint).
type FileBackend struct {
	cfg    FileConfig
	m      *metrics
	broker *broker[Authority]

	mu    sync.Mutex
	table *fileTable
	raw   []byte
	ready atomic.Bool
}

// NewFileBackend reads and validates the file once; call Run to follow its
// changes.
func NewFileBackend(cfg FileConfig) (*FileBackend, error) {
	if cfg.Path == "" {
		return nil, errors.New("destination: FileConfig.Path is required")
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = DefaultFilePollInterval
	}
	if cfg.Registry == nil {
		cfg.Registry = prometheus.NewRegistry()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	f := &FileBackend{cfg: cfg, m: newMetrics(cfg.Registry)}
	f.broker = newBroker(f.compute, f.m)
	raw, err := os.ReadFile(cfg.Path)
	if err != nil {
		return nil, fmt.Errorf("destination: %w", err)
	}
	t, _, err := parseFileTable(raw)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, cfg.Path)
	}
	f.table, f.raw = t, raw
	f.ready.Store(true)
	f.m.backendReady.Set(1)
	return f, nil
}

// Ready reports whether the backend has a valid table (always, once built).
func (f *FileBackend) Ready() bool { return f.ready.Load() }

// Run re-reads the file every PollInterval until ctx ends. An invalid or
// missing file is logged and counted, and the last valid table stays.
func (f *FileBackend) Run(ctx context.Context) error {
	tick := time.NewTicker(f.cfg.PollInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			f.reload()
		}
	}
}

// reload reads the file and, when its bytes changed and parse, swaps the
// table and recomputes every followed authority.
func (f *FileBackend) reload() {
	raw, err := os.ReadFile(f.cfg.Path)
	if err != nil {
		f.reloadFailed(err)
		return
	}
	f.mu.Lock()
	same := bytes.Equal(raw, f.raw)
	f.mu.Unlock()
	if same {
		return
	}
	at := time.Now()
	t, _, err := parseFileTable(raw)
	if err != nil {
		// Remember the bad bytes so one bad save is reported once.
		f.mu.Lock()
		f.raw = raw
		f.mu.Unlock()
		f.reloadFailed(err)
		return
	}
	f.mu.Lock()
	f.table, f.raw = t, raw
	f.mu.Unlock()
	f.m.fileReloads.WithLabelValues("ok").Inc()
	f.broker.invalidateAll(at)
}

func (f *FileBackend) reloadFailed(err error) {
	f.m.fileReloads.WithLabelValues("error").Inc()
	f.cfg.Logger.Error("destination: keeping the last valid endpoints file", "file", f.cfg.Path, "error", err)
}

func (f *FileBackend) metrics() *metrics { return f.m }

func (f *FileBackend) subscribe(a Authority, _ string, s *subscriber) (func(), error) {
	return f.broker.subscribe(a, s), nil
}

func (f *FileBackend) compute(a Authority) (snapshot, []depKey) {
	f.mu.Lock()
	t := f.table
	f.mu.Unlock()
	deps := []depKey{"file"}
	var eps []endpoint.Endpoint
	switch {
	case t.byAlias[a] != nil:
		eps = t.byAlias[a].eps
	case a.IP.IsValid():
		ep, ok := t.byAddr[netip.AddrPortFrom(a.IP, a.Port)]
		if !ok {
			return snapshot{}, deps
		}
		eps = []endpoint.Endpoint{ep}
	default:
		e := t.byName[a.Host]
		if e == nil || e.port != 0 && a.Port != 0 && e.port != a.Port {
			return snapshot{}, deps
		}
		eps = e.eps
	}
	snap := snapshot{exists: true, eps: make(map[netip.AddrPort]*pb.Endpoint, len(eps))}
	for _, ep := range eps {
		snap.eps[ep.Addr] = toProto(ep)
	}
	return snap, deps
}

// toProto converts the shared endpoint value to its wire form.
func toProto(ep endpoint.Endpoint) *pb.Endpoint {
	return &pb.Endpoint{
		Address:      tcpAddress(ep.Addr),
		Weight:       ep.Weight,
		Identity:     ep.Identity,
		Protocol:     pb.ProtocolHint(ep.Protocol),
		Zone:         ep.Zone,
		MetricLabels: ep.Labels,
	}
}
