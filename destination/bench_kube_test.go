package destination_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlet/meshlet/proxy/discovery"
	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/test/kubetest"
)

// benchSize is the scale of BenchmarkKubeDiscovery. The default fits a
// shared 2-core machine; MESHLET_BENCH_FULL=1 runs the target size
// (500 services × 10 endpoints, 1,000 streams).
type benchSize struct {
	services, endpoints, clients, watchesPerClient int
}

func sizeFromEnv() benchSize {
	if os.Getenv("MESHLET_BENCH_FULL") == "1" {
		return benchSize{services: 500, endpoints: 10, clients: 100, watchesPerClient: 10}
	}
	return benchSize{services: 100, endpoints: 10, clients: 20, watchesPerClient: 10}
}

// BenchmarkKubeDiscovery measures, against a real API server and a real
// meshlet-destination process, the time from an EndpointSlice update (the
// API call starts) to the update callback of every proxy client following
// that service, and the destination's memory. Each iteration changes the
// readiness of one endpoint of one service. Run it bounded, e.g.
//
//	go test -run '^$' -bench KubeDiscovery -benchtime 200x ./destination/
func BenchmarkKubeDiscovery(b *testing.B) {
	if b.N == 1 {
		// The harness's first probing run: the setup costs a minute, so
		// only the run with the requested -benchtime Nx (N > 1) measures.
		return
	}
	size := sizeFromEnv()
	c := kubetest.Shared(b)
	ns := c.Namespace(b)
	cs := c.Client()
	ctx := context.Background()

	// Thousands of pods take longer to delete than the namespace cleanup
	// allows on a busy machine: delete them first, with time to spare
	// (cleanups run last-registered first).
	b.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := cs.CoreV1().Pods(ns).DeleteCollection(dctx, metav1.DeleteOptions{GracePeriodSeconds: new(int64(0))}, metav1.ListOptions{}); err != nil {
			b.Errorf("delete pods: %v", err)
		}
	})
	start := time.Now()
	slicesBySvc := populate(b, cs, ns, size)
	b.Logf("created %d services, %d pods, %d slices in %v", size.services, size.services*size.endpoints, size.services, time.Since(start).Round(time.Millisecond))

	bin := buildDestination(b)
	addr, admin, pid := startDestinationProcess(b, bin, c.Kubeconfig())

	// Every client is a proxy: one connection, watchesPerClient services.
	// Watchers of service s report how many endpoints each set has.
	type watch struct{ ch chan counted }
	watchers := make([][]*watch, size.services)
	var clients []*discovery.Client
	streams := 0
	for i := range size.clients {
		cl, err := discovery.New(discovery.Config{Addr: addr, ContextNamespace: ns})
		if err != nil {
			b.Fatal(err)
		}
		clients = append(clients, cl)
		for j := range size.watchesPerClient {
			s := (i*size.watchesPerClient + j) % size.services
			w := &watch{ch: make(chan counted, 256)}
			watchers[s] = append(watchers[s], w)
			stop := cl.Watch(fmt.Sprintf("svc-%d:80", s), func(set endpoint.Set) {
				select {
				case w.ch <- counted{n: len(set.Endpoints), at: time.Now()}:
				default:
				}
			})
			b.Cleanup(stop)
			streams++
		}
	}
	b.Cleanup(func() {
		for _, cl := range clients {
			cl.Close()
		}
	})
	// Every watcher has the full set before measuring.
	for s, ws := range watchers {
		for _, w := range ws {
			if _, err := waitCount(w.ch, size.endpoints, fmt.Sprintf("svc-%d initial", s)); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Logf("%d streams from %d clients synced %v after start", streams, len(clients), time.Since(start).Round(time.Millisecond))

	// MESHLET_BENCH_BURST=n changes n services at once per iteration
	// (churn); the default changes one at a time.
	burst := 1
	if v, err := strconv.Atoi(os.Getenv("MESHLET_BENCH_BURST")); err == nil && v > 0 {
		burst = min(v, size.services)
	}
	// MESHLET_BENCH_CPUPROFILE=file saves a 10 s CPU profile of the
	// destination taken while the changes run.
	profDone := make(chan struct{})
	if path := os.Getenv("MESHLET_BENCH_CPUPROFILE"); path != "" {
		go func() {
			defer close(profDone)
			resp, err := http.Get("http://" + admin + "/debug/pprof/profile?seconds=10")
			if err != nil {
				b.Error(err)
				return
			}
			defer resp.Body.Close()
			f, err := os.Create(path)
			if err != nil {
				b.Error(err)
				return
			}
			defer f.Close()
			_, _ = f.ReadFrom(resp.Body)
		}()
	} else {
		close(profDone)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var firstErr error
		for k := range burst {
			s := (i*burst + k) % size.services
			wg.Go(func() {
				var chans []chan counted
				for _, w := range watchers[s] {
					chans = append(chans, w.ch)
				}
				d, err := flip(ctx, cs, ns, slicesBySvc, s, chans, size.endpoints)
				mu.Lock()
				defer mu.Unlock()
				lat = append(lat, d...)
				if err != nil && firstErr == nil {
					firstErr = fmt.Errorf("iteration %d: %w", i, err)
				}
			})
		}
		wg.Wait()
		if firstErr != nil {
			b.Fatal(firstErr)
		}
	}
	b.StopTimer()
	<-profDone

	slices.Sort(lat)
	pct := func(p float64) time.Duration { return lat[min(len(lat)-1, int(float64(len(lat))*p))] }
	rss, hwm := procMemory(b, pid)
	heap := scrapeMetric(b, admin, "go_memstats_heap_inuse_bytes")
	// The server's own share: informer event to Send, as a bucket bound.
	lagP99 := scrapeQuantile(b, admin, "meshlet_destination_update_lag_seconds", 0.99)
	b.ReportMetric(lagP99*1000, "server-lag-p99-ms")
	b.ReportMetric(float64(pct(0.50).Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(pct(0.99).Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
	b.ReportMetric(rss/1e6, "rss-MB")
	b.ReportMetric(hwm/1e6, "peak-rss-MB")
	b.ReportMetric(heap/1e6, "heap-inuse-MB")
	b.Logf("size %+v, burst %d, %d streams, %d samples: p50 %v p99 %v max %v; server event->send p99 <= %v; destination RSS %.0f MB (peak %.0f MB), heap in use %.0f MB",
		size, burst, streams, len(lat), pct(0.5), pct(0.99), lat[len(lat)-1], time.Duration(lagP99*float64(time.Second)), rss/1e6, hwm/1e6, heap/1e6)
}

// flip changes the readiness of endpoint 0 of service s and returns how
// long each of its watchers took to see the new set.
func flip(ctx context.Context, cs kubernetes.Interface, ns string, all []*discoveryv1.EndpointSlice, s int, watchers []chan counted, n int) ([]time.Duration, error) {
	sl := all[s]
	ready := sl.Endpoints[0].Conditions.Ready == nil || *sl.Endpoints[0].Conditions.Ready
	sl.Endpoints[0].Conditions.Ready = new(!ready)
	want := n
	if ready {
		want--
	}
	t0 := time.Now()
	updated, err := cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, sl, metav1.UpdateOptions{})
	if err != nil {
		return nil, err
	}
	all[s] = updated
	var out []time.Duration
	for _, ch := range watchers {
		at, err := waitCount(ch, want, fmt.Sprintf("svc-%d", s))
		if err != nil {
			return out, err
		}
		out = append(out, at.Sub(t0))
	}
	return out, nil
}

type counted struct {
	n  int
	at time.Time
}

func waitCount(ch chan counted, want int, what string) (time.Time, error) {
	timeout := time.After(30 * time.Second)
	for {
		select {
		case c := <-ch:
			if c.n == want {
				return c.at, nil
			}
		case <-timeout:
			return time.Time{}, fmt.Errorf("%s: no set of %d endpoints within 30s", what, want)
		}
	}
}

// populate creates the services, their pods (meshed, with status) and one
// EndpointSlice each, with a few workers.
func populate(b *testing.B, cs kubernetes.Interface, ns string, size benchSize) []*discoveryv1.EndpointSlice {
	b.Helper()
	ctx := context.Background()
	out := make([]*discoveryv1.EndpointSlice, size.services)
	work := make(chan int)
	errs := make(chan error, size.services)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for s := range work {
				sl, err := createService(ctx, cs, ns, s, size.endpoints)
				if err != nil {
					errs <- err
					continue
				}
				out[s] = sl
			}
		})
	}
	for s := range size.services {
		work <- s
	}
	close(work)
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return out
}

func createService(ctx context.Context, cs kubernetes.Interface, ns string, s, n int) (*discoveryv1.EndpointSlice, error) {
	name := fmt.Sprintf("svc-%d", s)
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	sl := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: name}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new("http"), Port: new(int32(8080))}},
	}
	for e := range n {
		pod := fmt.Sprintf("%s-%d", name, e)
		ip := fmt.Sprintf("10.%d.%d.%d", 100+s/250, s%250, e+1)
		p, err := cs.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: pod, Annotations: map[string]string{"meshlet.io/proxy-version": "bench"}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}, metav1.CreateOptions{})
		if err != nil {
			return nil, err
		}
		p.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}}
		if _, err := cs.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
			return nil, err
		}
		sl.Endpoints = append(sl.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{ip},
			Conditions: discoveryv1.EndpointConditions{Ready: new(true)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: pod},
			Zone:       new("zone-a"),
		})
	}
	return cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, sl, metav1.CreateOptions{})
}

// buildDestination builds the meshlet-destination binary, so its memory is
// measured alone, as in production.
func buildDestination(b *testing.B) string {
	b.Helper()
	bin := filepath.Join(b.TempDir(), "meshlet-destination")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/meshlet/meshlet/destination/cmd/meshlet-destination")
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func startDestinationProcess(b *testing.B, bin, kubeconfig string) (addr, admin string, pid int) {
	b.Helper()
	grpcAddr, adminAddr := freeAddr(b), freeAddr(b)
	cmd := exec.Command(bin, "--kubeconfig", kubeconfig, "--grpc-addr", grpcAddr, "--admin-addr", adminAddr, "--log-level", "warn", "--pprof")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return grpcAddr, adminAddr, cmd.Process.Pid
			}
		}
		if time.Now().After(deadline) {
			b.Fatal("meshlet-destination not ready within 60s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freeAddr(b *testing.B) string {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// procMemory reads the destination's current and peak RSS from /proc.
func procMemory(b *testing.B, pid int) (rss, hwm float64) {
	b.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kb, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "VmRSS:":
			rss = kb * 1024
		case "VmHWM:":
			hwm = kb * 1024
		}
	}
	return rss, hwm
}

// scrapeMetric reads one unlabelled series from the admin /metrics.
func scrapeMetric(b *testing.B, admin, name string) float64 {
	b.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, _ := strconv.ParseFloat(v, 64)
			return f
		}
	}
	b.Fatalf("metric %s not found", name)
	return 0
}

// scrapeQuantile returns the upper bound of the histogram bucket holding
// quantile q of an unlabelled histogram on the admin /metrics.
func scrapeQuantile(b *testing.B, admin, name string, q float64) float64 {
	b.Helper()
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	type bucket struct{ le, n float64 }
	var buckets []bucket
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name+`_bucket{le="`)
		if !ok {
			continue
		}
		le, count, ok := strings.Cut(rest, `"} `)
		if !ok {
			continue
		}
		l, _ := strconv.ParseFloat(le, 64) // "+Inf" parses as +Inf
		n, _ := strconv.ParseFloat(count, 64)
		buckets = append(buckets, bucket{l, n})
	}
	if len(buckets) == 0 || buckets[len(buckets)-1].n == 0 {
		b.Fatalf("histogram %s empty", name)
	}
	total := buckets[len(buckets)-1].n
	for _, bk := range buckets {
		if bk.n >= q*total {
			return bk.le
		}
	}
	return buckets[len(buckets)-1].le
}
