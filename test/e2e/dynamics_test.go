//go:build linux

package e2e

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// propagationLimit bounds how long an EndpointSlice change may take to
// show in the traffic: the goal is about a second; the bound leaves room
// for a machine busy with other builds.
const propagationLimit = 2500 * time.Millisecond

// testPeakEWMA: of three replicas, one answers 10× slower; peak-EWMA must
// send it under 10% of the requests.
// Answer delays of the peak-EWMA replicas.
// The base is large enough that a busy machine's scheduling noise does not
// blur the 10× difference.
const fastDelay, slowDelay = 20 * time.Millisecond, 200 * time.Millisecond

// ewmaPods starts the three replicas of testPeakEWMA (in the parent test:
// pods live as long as the test that started them).
func ewmaPods(t *testing.T, m *mesh, ns string) []*pod {
	labels := map[string]string{"app": "ewma"}
	return []*pod{
		m.startPod(t, podOptions{namespace: ns, name: "ewma-fast-0", sa: "web", labels: labels, delay: fastDelay, wantMeshed: true}),
		m.startPod(t, podOptions{namespace: ns, name: "ewma-fast-1", sa: "web", labels: labels, delay: fastDelay, wantMeshed: true}),
		m.startPod(t, podOptions{namespace: ns, name: "ewma-slow", sa: "web", labels: labels, delay: slowDelay, wantMeshed: true}),
	}
}

func testPeakEWMA(t *testing.T, m *mesh, ns string, client *pod, pods []*pod) {
	svc := m.createService(t, ns, "ewma", map[string]string{"app": "ewma"})
	m.setEndpoints(t, ns, "ewma", []endpointState{{pod: pods[0]}, {pod: pods[1]}, {pod: pods[2]}})
	url := "http://" + svc.Spec.ClusterIP + ":" + strconv.Itoa(httpPort) + "/"
	converge(t, "HTTP to the new service", func() error { return tryGet(client, url, "") })
	// Warm up: the first answers teach the balancer each replica's latency.
	warm := startLoad(t, client, url, 2, 30, 30*time.Second)
	warm.wg.Wait()
	warm.stop()
	warm.requireNoFailures(t, "warm-up")

	begin := time.Now()
	// Three workers: enough concurrency that in-flight counts matter, not
	// so much that the two fast replicas' queues make the slow one cheaper
	// (which peak-EWMA would then rightly prefer).
	l := startLoad(t, client, url, 3, 400, 90*time.Second)
	l.wg.Wait()
	l.requireNoFailures(t, "peak-EWMA load")
	events, _, _ := l.snapshot()
	by := count(events, begin)
	total := len(events)
	share := float64(by["ewma-slow"]) / float64(total)
	t.Logf("peak-EWMA: %d requests in %v: %v (slow replica %.1f%%)", total, time.Since(begin).Round(time.Millisecond), by, 100*share)
	if total < 300 {
		t.Fatalf("only %d requests answered", total)
	}
	if share >= 0.10 {
		t.Errorf("the 10× slower replica got %.1f%% of the requests (%v), want under 10%%", 100*share, by)
	}
	if by["ewma-fast-0"] == 0 || by["ewma-fast-1"] == 0 {
		t.Errorf("a fast replica got no requests: %v", by)
	}
}

// testScaling changes the EndpointSlice under load: a replica added, one
// marked not ready, one removed gracefully (terminating, then stopped);
// each change must show in the traffic within propagationLimit and no
// request may fail.
func scalePods(t *testing.T, m *mesh, ns string) (pods []*pod) {
	for i := range 3 {
		pods = append(pods, m.startPod(t, podOptions{namespace: ns, name: fmt.Sprintf("scale-%d", i), sa: "web",
			labels: map[string]string{"app": "scale"}, wantMeshed: true}))
	}
	return pods
}

func testScaling(t *testing.T, m *mesh, ns string, client *pod, pods []*pod) (svcIP string) {
	svc := m.createService(t, ns, "scale", map[string]string{"app": "scale"})
	m.setEndpoints(t, ns, "scale", []endpointState{{pod: pods[0]}, {pod: pods[1]}})
	url := "http://" + svc.Spec.ClusterIP + ":" + strconv.Itoa(httpPort) + "/"
	converge(t, "HTTP to the new service", func() error { return tryGet(client, url, "") })

	l := startLoad(t, client, url, 4, maxLoadRequests, 3*time.Minute)
	start := time.Now()
	if _, ok := l.waitFor(start, 30*time.Second, func(ev []loadEvent) bool {
		c := count(ev, start)
		return c["scale-0"] > 0 && c["scale-1"] > 0
	}); !ok {
		t.Fatal("the load never reached both first replicas")
	}

	// Scale up.
	t0 := time.Now()
	m.setEndpoints(t, ns, "scale", []endpointState{{pod: pods[0]}, {pod: pods[1]}, {pod: pods[2]}})
	took, ok := l.waitFor(t0, propagationLimit, func(ev []loadEvent) bool { return count(ev, t0)["scale-2"] > 0 })
	t.Logf("added replica answered after %v", took.Round(time.Millisecond))
	if !ok {
		t.Errorf("the added replica got no request within %v", propagationLimit)
	}

	// Not ready: it must stop getting requests.
	t1 := time.Now()
	m.setEndpoints(t, ns, "scale", []endpointState{{pod: pods[0], notReady: true}, {pod: pods[1]}, {pod: pods[2]}})
	lag := lastAnswer(t, l, "scale-0", t1)
	t.Logf("not-ready replica's last answer %v after the change", lag.Round(time.Millisecond))
	if lag > propagationLimit {
		t.Errorf("the not-ready replica still answered %v after the change", lag)
	}

	// Graceful removal: terminating first, then the pod's processes end.
	t2 := time.Now()
	m.setEndpoints(t, ns, "scale", []endpointState{{pod: pods[0], notReady: true}, {pod: pods[1], terminating: true}, {pod: pods[2]}})
	lag = lastAnswer(t, l, "scale-1", t2)
	t.Logf("terminating replica's last answer %v after the change", lag.Round(time.Millisecond))
	if lag > propagationLimit {
		t.Errorf("the terminating replica still answered %v after the change", lag)
	}
	m.stopPod(pods[1])
	time.Sleep(time.Second)
	t3 := time.Now()
	time.Sleep(time.Second)
	l.stop()
	events, _, _ := l.snapshot()
	if by := count(events, t3); len(by) != 1 || by["scale-2"] == 0 {
		t.Errorf("after the changes, answers came from %v, want scale-2 alone", by)
	}
	t.Logf("scaling: %d requests answered", len(events))
	l.requireNoFailures(t, "scaling load")
	return svc.Spec.ClusterIP
}

// lastAnswer waits propagationLimit + 1 s after since and returns how long
// after since pod answered last (0 when it never did).
func lastAnswer(t *testing.T, l *load, pod string, since time.Time) time.Duration {
	time.Sleep(time.Until(since.Add(propagationLimit + time.Second)))
	events, _, _ := l.snapshot()
	var last time.Duration
	after := 0
	for _, e := range events {
		if e.at.Before(since) {
			continue
		}
		if e.pod == pod {
			last = e.at.Sub(since)
		}
		after++
	}
	if after == 0 {
		t.Fatalf("no answers at all after the change")
	}
	return last
}

// testDestinationRestart restarts meshlet-destination under load (1 s
// down): no request may fail, and once it is back, a change of endpoints
// reaches the proxy again.
func testDestinationRestart(t *testing.T, m *mesh, ns string, client *pod, svcIP string, pods []*pod) {
	url := "http://" + svcIP + ":" + strconv.Itoa(httpPort) + "/"
	l := startLoad(t, client, url, 4, maxLoadRequests, 2*time.Minute)
	time.Sleep(time.Second)
	m.restart(t, "destination", time.Second)
	time.Sleep(2 * time.Second)
	// scale-0 (not ready so far) comes back: the new destination must tell
	// the client's proxy.
	t0 := time.Now()
	m.setEndpoints(t, ns, "scale", []endpointState{{pod: pods[0]}, {pod: pods[2]}})
	took, ok := l.waitFor(t0, 5*time.Second, func(ev []loadEvent) bool { return count(ev, t0)["scale-0"] > 0 })
	l.stop()
	t.Logf("after the restart, a ready-again replica answered after %v", took.Round(time.Millisecond))
	if !ok {
		t.Errorf("after the destination restart, an endpoint change never reached the proxy")
	}
	events, _, _ := l.snapshot()
	t.Logf("destination restart: %d requests answered", len(events))
	l.requireNoFailures(t, "load across the destination restart")
}

// testRotation runs load for longer than a renewal period, with
// meshlet-identity restarted early on: every proxy on the path renews its
// certificate meanwhile, and no request or connection fails.
func testRotation(t *testing.T, m *mesh, client *pod, web []*pod, svcIP string) {
	proxies := append([]*pod{client}, web...)
	renewals := func() map[string]float64 {
		out := map[string]float64{}
		for _, p := range proxies {
			out[p.name] = p.scrape(t).sum("meshlet_proxy_identity_cert_renewals_total", nil)
		}
		return out
	}
	before := renewals()
	window := certLifetime * 9 / 10
	l := startLoad(t, client, "http://"+svcIP+":"+strconv.Itoa(httpPort)+"/", 2, maxLoadRequests, window+time.Minute)
	// New opaque connections all along: each is a new mTLS handshake with
	// whatever certificates the proxies hold at that moment.
	deadline := time.Now().Add(window)
	conns, failed := 0, []string{}
	// meshlet-identity is restarted (2 s down) early in the window, so the
	// renewals counted below come from the new process, and the proxies
	// ride out its absence on the certificates they hold.
	restarted := false
	for time.Now().Before(deadline) && conns < 2000 {
		if !restarted && time.Until(deadline) < window-time.Second {
			m.restart(t, "identity", 2*time.Second)
			restarted = true
		}
		if _, err := tryBanner(client, svcIP+":"+strconv.Itoa(bannerPort)); err != nil {
			failed = append(failed, err.Error())
		}
		conns++
		time.Sleep(100 * time.Millisecond)
	}
	l.stop()
	after := renewals()
	var notRenewed []string
	for name, n := range after {
		if n <= before[name] {
			notRenewed = append(notRenewed, name)
		}
	}
	sort.Strings(notRenewed)
	t.Logf("rotation: renewals before %v, after %v; %d opaque connections", before, after, conns)
	if len(notRenewed) > 0 {
		t.Errorf("no certificate renewal in %v (lifetime %v) by: %s", window, certLifetime, strings.Join(notRenewed, ", "))
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d opaque connections failed during rotation: %v", len(failed), conns, failed[:min(5, len(failed))])
	}
	l.requireNoFailures(t, "HTTP load during rotation")
}
