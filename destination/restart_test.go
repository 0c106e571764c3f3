package destination_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/destination"
	"github.com/meshlet/meshlet/proxy/discovery"
	"github.com/meshlet/meshlet/proxy/endpoint"
	"github.com/meshlet/meshlet/test/kubetest"
)

// runDestination runs the whole service (destination.Run, as the binary
// does) against the cluster; stop ends it and waits.
func runDestination(t *testing.T, kubeconfig, grpcAddr string) (addr, admin string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]string, 1)
	done := make(chan error, 1)
	go func() {
		done <- destination.Run(ctx, destination.Config{
			GRPCAddr:   grpcAddr,
			AdminAddr:  "127.0.0.1:0",
			Kubeconfig: kubeconfig,
			Logger:     slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnListen:   func(g, a net.Addr) { addrs <- [2]string{g.String(), a.String()} },
		})
	}()
	var got [2]string
	select {
	case got = <-addrs:
	case err := <-done:
		cancel()
		t.Fatalf("destination.Run: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("destination did not listen")
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("destination.Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	// /ready turns 200 once the informers have synced.
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + got[1] + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("destination never ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return got[0], got[1], stop
}

func setAddrs(s endpoint.Set) string {
	var b []string
	for _, e := range s.Endpoints {
		b = append(b, e.Addr.String())
	}
	return strings.Join(b, " ")
}

// The destination restarts mid-stream: the proxy's resolver keeps its last
// endpoints (no update) while it is down, and resyncs to the cluster's
// current state, including what changed meanwhile, when it is back.
func TestRestartMidStream(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	cs := c.Client()
	ctx := context.Background()
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: "web-1", Labels: map[string]string{discoveryv1.LabelServiceName: "web"}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: new(string), Port: new(int32(8080))}},
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"10.4.0.1"}}, {Addresses: []string{"10.4.0.2"}}},
	}
	slice, err := cs.DiscoveryV1().EndpointSlices(ns).Create(ctx, slice, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	addr, _, stop := runDestination(t, c.Kubeconfig(), "127.0.0.1:0")
	client, err := discovery.New(discovery.Config{Addr: addr, ContextNamespace: ns, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	updates := make(chan endpoint.Set, 16)
	stopWatch := client.Watch("web:80", func(s endpoint.Set) { updates <- s })
	defer stopWatch()
	next := func() string {
		t.Helper()
		select {
		case s := <-updates:
			return setAddrs(s)
		case <-time.After(15 * time.Second):
			t.Fatal("no update")
			return ""
		}
	}
	if got := next(); got != "10.4.0.1:8080 10.4.0.2:8080" {
		t.Fatalf("initial: %q", got)
	}

	stop()
	// Down: the cluster changes, the proxy hears nothing and keeps its set.
	slice.Endpoints = []discoveryv1.Endpoint{{Addresses: []string{"10.4.0.2"}}, {Addresses: []string{"10.4.0.3"}}}
	if _, err := cs.DiscoveryV1().EndpointSlices(ns).Update(ctx, slice, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case s := <-updates:
		t.Fatalf("update while the destination is down: %s", setAddrs(s))
	case <-time.After(700 * time.Millisecond):
	}

	runDestination(t, c.Kubeconfig(), addr)
	if got := next(); got != "10.4.0.2:8080 10.4.0.3:8080" {
		t.Fatalf("after restart: %q", got)
	}
}
