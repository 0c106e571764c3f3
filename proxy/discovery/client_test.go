package discovery

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/meshlet/meshlet/destination"
	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/proxy/endpoint"
)

const file1 = `services:
  web:
    port: 8080
    endpoints:
      - address: 127.0.0.1:9001
        identity: spiffe://meshlet.local/ns/dev/sa/web
        protocol: http2
        zone: z1
        labels: {version: v1}
      - address: 127.0.0.1:9002
        weight: 5
        protocol: opaque
`

// server is a real meshlet-destination (file backend, gRPC on loopback)
// that a test can stop and start again on the same address.
type server struct {
	t    *testing.T
	path string
	addr string
	reg  *prometheus.Registry

	mu   sync.Mutex
	stop func()
}

func newServer(t *testing.T, content string) *server {
	s := &server{t: t, path: filepath.Join(t.TempDir(), "endpoints.yaml")}
	s.write(content)
	s.start()
	t.Cleanup(s.shutdown)
	return s
}

func (s *server) write(content string) {
	s.t.Helper()
	tmp := s.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, s.path); err != nil {
		s.t.Fatal(err)
	}
}

func (s *server) start() {
	s.t.Helper()
	addr := s.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var l net.Listener
	var err error
	// The old listener's port may take a moment to be free again.
	for i := 0; i < 100; i++ {
		if l, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatal(err)
	}
	s.addr = l.Addr().String()
	s.reg = prometheus.NewRegistry()
	fb, err := destination.NewFileBackend(destination.FileConfig{Path: s.path, PollInterval: 20 * time.Millisecond, Registry: s.reg})
	if err != nil {
		s.t.Fatal(err)
	}
	srv, err := destination.NewServer(destination.ServerConfig{Backend: fb})
	if err != nil {
		s.t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterDestinationServer(gs, srv)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = fb.Run(ctx) }()
	go func() { defer wg.Done(); _ = gs.Serve(l) }()
	s.mu.Lock()
	s.stop = func() { cancel(); gs.Stop(); wg.Wait() }
	s.mu.Unlock()
}

func (s *server) shutdown() {
	s.mu.Lock()
	stop := s.stop
	s.stop = nil
	s.mu.Unlock()
	if stop != nil {
		stop()
	}
}

// streamsOpen reads the server's meshlet_destination_streams_open.
func (s *server) streamsOpen() float64 {
	mfs, err := s.reg.Gather()
	if err != nil {
		s.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "meshlet_destination_streams_open" {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return -1
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// recorder collects the sets a watch receives.
type recorder struct {
	mu   sync.Mutex
	sets []endpoint.Set
	ch   chan endpoint.Set
}

func newRecorder() *recorder { return &recorder{ch: make(chan endpoint.Set, 100)} }

func (r *recorder) update(s endpoint.Set) {
	r.mu.Lock()
	r.sets = append(r.sets, s)
	r.mu.Unlock()
	r.ch <- s
}

func (r *recorder) next(t *testing.T) endpoint.Set {
	t.Helper()
	select {
	case s := <-r.ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no update within 10s")
		return endpoint.Set{}
	}
}

func (r *recorder) none(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case s := <-r.ch:
		t.Fatalf("unexpected update %s", addrs(s))
	case <-time.After(d):
	}
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sets)
}

func addrs(s endpoint.Set) string {
	if !s.Exists {
		return "unknown"
	}
	var b []string
	for _, e := range s.Endpoints {
		b = append(b, e.Addr.String())
	}
	return "[" + strings.Join(b, " ") + "]"
}

func newClient(t *testing.T, addr string, idle time.Duration) (*Client, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	c, err := New(Config{Addr: addr, ContextNamespace: "dev", IdleTimeout: idle, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, reg
}

func TestWatchConvertsAndFollows(t *testing.T) {
	s := newServer(t, file1)
	c, _ := newClient(t, s.addr, -1)
	r := newRecorder()
	stop := c.Watch("web:8080", r.update)
	defer stop()

	got := r.next(t)
	want := []endpoint.Endpoint{
		{Addr: netip.MustParseAddrPort("127.0.0.1:9001"), Identity: "spiffe://meshlet.local/ns/dev/sa/web", Protocol: endpoint.ProtocolHTTP2, Zone: "z1",
			Labels: map[string]string{"service": "web", "version": "v1"}},
		{Addr: netip.MustParseAddrPort("127.0.0.1:9002"), Weight: 5, Protocol: endpoint.ProtocolOpaque, Labels: map[string]string{"service": "web"}},
	}
	if !equalSets(got, endpoint.Set{Exists: true, Endpoints: want}) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}

	s.write(strings.Replace(file1, "127.0.0.1:9002", "127.0.0.1:9003", 1))
	// The server sends the add, then the remove: the watcher sees the
	// superset first, then the final set.
	if got := addrs(r.next(t)); got != "[127.0.0.1:9001 127.0.0.1:9002 127.0.0.1:9003]" {
		t.Fatalf("after change: %s", got)
	}
	if got := addrs(r.next(t)); got != "[127.0.0.1:9001 127.0.0.1:9003]" {
		t.Fatalf("after change: %s", got)
	}
	s.write("services: {}\n")
	if got := r.next(t); got.Exists || len(got.Endpoints) != 0 {
		t.Fatalf("after removal: %+v", got)
	}
}

func TestUnknownAndMalformedAuthorities(t *testing.T) {
	s := newServer(t, file1)
	c, reg := newClient(t, s.addr, -1)
	for _, a := range []string{"nope:80", "bad_name:80", "10.0.0.1:80"} {
		t.Run(a, func(t *testing.T) {
			r := newRecorder()
			stop := c.Watch(a, r.update)
			defer stop()
			if got := r.next(t); got.Exists || len(got.Endpoints) != 0 {
				t.Fatalf("got %+v, want not existing", got)
			}
		})
	}
	if n := value(c.m.streamErrors.WithLabelValues("InvalidArgument")); n < 1 {
		t.Fatalf("InvalidArgument errors = %v; metrics registered: %v", n, reg != nil)
	}
}

func TestOneStreamPerAuthorityAndIdleClose(t *testing.T) {
	s := newServer(t, file1)
	c, _ := newClient(t, s.addr, 300*time.Millisecond)
	r1, r2 := newRecorder(), newRecorder()
	stop1 := c.Watch("web:8080", r1.update)
	r1.next(t)
	// A second watcher of a known authority gets the set at once, during
	// Watch, from the shared stream.
	stop2 := c.Watch("WEB:8080", r2.update)
	if r2.count() != 1 {
		t.Fatalf("second watcher got %d sets during Watch, want 1", r2.count())
	}
	eventually(t, "one server stream", func() bool { return s.streamsOpen() == 1 })
	stop1()
	stop2()
	// Within the idle timeout a new watcher reuses the stream.
	r3 := newRecorder()
	stop3 := c.Watch("web:8080", r3.update)
	if r3.count() != 1 {
		t.Fatal("watcher within the idle timeout did not get the cached set")
	}
	if s.streamsOpen() != 1 {
		t.Fatalf("streams = %v, want 1", s.streamsOpen())
	}
	stop3()
	eventually(t, "idle stream closed", func() bool { return s.streamsOpen() == 0 })
	if n := value(c.m.streams); n != 0 {
		t.Fatalf("client authorities = %v, want 0", n)
	}
	// No update after stop returned.
	n := r1.count() + r2.count() + r3.count()
	s.write(strings.Replace(file1, "9002", "9004", 1))
	time.Sleep(200 * time.Millisecond)
	if r1.count()+r2.count()+r3.count() != n {
		t.Fatal("update after stop")
	}
}

// The control plane goes away: watchers keep their last set and hear
// nothing; a new watcher still gets it; when the server is back the
// complete state replaces it.
func TestKeepsLastSetWhileDownAndResyncs(t *testing.T) {
	s := newServer(t, file1)
	c, _ := newClient(t, s.addr, -1)
	r := newRecorder()
	stop := c.Watch("web:8080", r.update)
	defer stop()
	before := r.next(t)

	s.shutdown()
	r.none(t, 500*time.Millisecond)
	r2 := newRecorder()
	stop2 := c.Watch("web:8080", r2.update)
	defer stop2()
	if got := r2.next(t); !equalSets(got, before) {
		t.Fatalf("watcher joining while down got %s, want %s", addrs(got), addrs(before))
	}
	if n := value(c.m.streamErrors.WithLabelValues("Unavailable")); n < 1 {
		t.Fatalf("Unavailable errors = %v", n)
	}

	// Back, with one endpoint replaced while it was down.
	s.write(strings.Replace(file1, "127.0.0.1:9002", "127.0.0.1:9005", 1))
	s.start()
	// The resync is one complete set, not a merge with the old one.
	if got := addrs(r.next(t)); got != "[127.0.0.1:9001 127.0.0.1:9005]" {
		t.Fatalf("after resync: %s", got)
	}
	if got := addrs(r2.next(t)); got != "[127.0.0.1:9001 127.0.0.1:9005]" {
		t.Fatalf("after resync (second watcher): %s", got)
	}

	// A restart that changes nothing issues no update.
	s.shutdown()
	s.start()
	eventually(t, "reconnected", func() bool { return s.streamsOpen() == 1 })
	r.none(t, 300*time.Millisecond)
}

func TestStateApply(t *testing.T) {
	s := state{eps: make(map[netip.AddrPort]endpoint.Endpoint)}
	good := &pb.Endpoint{Address: &pb.TCPAddress{Ip: []byte{10, 0, 0, 1}, Port: 80}}
	bad := []*pb.Endpoint{
		{Address: &pb.TCPAddress{Ip: []byte{10, 0, 0}, Port: 80}},
		{Address: &pb.TCPAddress{Ip: []byte{10, 0, 0, 2}, Port: 70000}},
		{Address: &pb.TCPAddress{Ip: []byte{10, 0, 0, 2}, Port: 0}},
		{},
	}
	if n := s.apply(&pb.Update{Update: &pb.Update_Add{Add: &pb.AddEndpoints{Endpoints: append(bad, good)}}}); n != 4 {
		t.Fatalf("invalid = %d, want 4", n)
	}
	if got := addrs(s.set()); got != "[10.0.0.1:80]" {
		t.Fatalf("set = %s", got)
	}
	if n := s.apply(&pb.Update{}); n != 1 {
		t.Fatal("empty update not counted as invalid")
	}
	s.apply(&pb.Update{Update: &pb.Update_Remove{Remove: &pb.RemoveEndpoints{Addresses: []*pb.TCPAddress{good.Address}}}})
	if got := s.set(); !got.Exists || len(got.Endpoints) != 0 {
		t.Fatalf("after remove: %+v", got)
	}
	s.apply(&pb.Update{Update: &pb.Update_NoEndpoints{NoEndpoints: &pb.NoEndpoints{Exists: false}}})
	if s.set().Exists {
		t.Fatal("NoEndpoints{exists:false} kept Exists")
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []Config{{}, {Addr: "x:1", MinBackoff: -1}, {Addr: "x:1", MinBackoff: 2 * time.Second, MaxBackoff: time.Second}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: no error", c)
		}
	}
}

func TestJitter(t *testing.T) {
	for range 1000 {
		if d := jitter(time.Second); d < 500*time.Millisecond || d >= time.Second {
			t.Fatalf("jitter(1s) = %v", d)
		}
	}
}

// Close ends every stream goroutine the client started.
func TestCloseLeavesNoGoroutines(t *testing.T) {
	s := newServer(t, file1)
	before := runtime.NumGoroutine()
	c, err := New(Config{Addr: s.addr, IdleTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r := newRecorder()
	for _, a := range []string{"web:8080", "nope:1", "web"} {
		c.Watch(a, r.update)
	}
	for range 3 {
		r.next(t)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
	if n := value(c.m.streams); n != 0 {
		t.Fatalf("authorities after Close = %v", n)
	}
	eventually(t, "server streams to close", func() bool { return s.streamsOpen() == 0 })
	// Watching a closed client is harmless.
	c.Watch("web:8080", r.update)()
}

// Many goroutines watch and stop the same few authorities while the
// endpoints change: no race, no update after stop, every stream closed at
// the end.
func TestConcurrentWatchStop(t *testing.T) {
	s := newServer(t, file1)
	c, _ := newClient(t, s.addr, -1)
	authorities := []string{"web:8080", "web", "nope:1"}
	var wg sync.WaitGroup
	var late atomic.Int64
	for g := range 20 {
		wg.Go(func() {
			for i := range 20 {
				var stopped atomic.Bool
				stop := c.Watch(authorities[(g+i)%len(authorities)], func(endpoint.Set) {
					if stopped.Load() {
						late.Add(1)
					}
				})
				time.Sleep(time.Duration(i%3) * time.Millisecond)
				stop()
				stopped.Store(true)
			}
		})
	}
	for i := range 5 {
		s.write(strings.Replace(file1, "9002", strconv.Itoa(9100+i), 1))
		time.Sleep(30 * time.Millisecond)
	}
	wg.Wait()
	if n := late.Load(); n != 0 {
		t.Fatalf("%d updates after stop returned", n)
	}
	eventually(t, "all streams closed", func() bool { return s.streamsOpen() == 0 && value(c.m.streams) == 0 })
}
