package destination

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
	"github.com/meshlet/meshlet/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// kubeEnv is a real API server, a fresh namespace and a destination server
// (Kubernetes backend, gRPC on loopback) in front of it.
type kubeEnv struct {
	t  *testing.T
	c  *kubetest.Cluster
	cs kubernetes.Interface
	ns string
	k  *KubeBackend
	pb pb.DestinationClient
}

func newKubeEnv(t *testing.T) *kubeEnv {
	t.Helper()
	c := kubetest.Shared(t)
	e := &kubeEnv{t: t, c: c, cs: c.Client(), ns: c.Namespace(t)}
	k, err := NewKubeBackend(KubeConfig{Client: e.cs})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = k.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for !k.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("informers did not sync")
		}
		time.Sleep(10 * time.Millisecond)
	}
	e.k = k
	e.pb = dial(t, serve(t, k, 0))
	return e
}

func (e *kubeEnv) ctx() context.Context { return context.Background() }

// cached waits until the backend's informer holds obj at its version, so a
// stream opened next sees it in its first message.
func (e *kubeEnv) cached(inf cache.SharedIndexInformer, obj metav1.Object) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, ok, _ := inf.GetStore().GetByKey(obj.GetNamespace() + "/" + obj.GetName())
		if ok && got.(metav1.Object).GetResourceVersion() == obj.GetResourceVersion() {
			return
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%s/%s never reached the informer cache", obj.GetNamespace(), obj.GetName())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *kubeEnv) service(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	e.t.Helper()
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{Ports: ports, ClusterIP: clusterIP},
	}
	out, err := e.cs.CoreV1().Services(ns).Create(e.ctx(), svc, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.cached(e.k.services, out)
	return out
}

// pod creates a pod and gives it a running status with ip, as a kubelet
// would (there is none).
func (e *kubeEnv) pod(p *corev1.Pod) *corev1.Pod {
	e.t.Helper()
	status := p.Status
	p.Status = corev1.PodStatus{}
	out, err := e.cs.CoreV1().Pods(p.Namespace).Create(e.ctx(), p, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	out.Status = status
	out, err = e.cs.CoreV1().Pods(p.Namespace).UpdateStatus(e.ctx(), out, metav1.UpdateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.cached(e.k.pods, out)
	return out
}

func (e *kubeEnv) slice(s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	e.t.Helper()
	out, err := e.cs.DiscoveryV1().EndpointSlices(s.Namespace).Create(e.ctx(), s, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.cached(e.k.slices, out)
	return out
}

func (e *kubeEnv) updateSlice(s *discoveryv1.EndpointSlice) *discoveryv1.EndpointSlice {
	e.t.Helper()
	out, err := e.cs.DiscoveryV1().EndpointSlices(s.Namespace).Update(e.ctx(), s, metav1.UpdateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
	return out
}

func appPod(ns, name, ip string, meshed bool) *corev1.Pod {
	p := newPod(ns, name, ip, ownedBy("ReplicaSet", "web-5f7c9", "5f7c9"))
	p.OwnerReferences[0].UID = "00000000-0000-0000-0000-000000000001"
	p.Spec.ServiceAccountName = "default"
	if meshed {
		injected(p)
	}
	return p
}

func TestKubeServiceLifecycle(t *testing.T) {
	e := newKubeEnv(t)
	ns := e.ns
	svc := e.service(ns, "web", "", corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)})
	clusterIP := svc.Spec.ClusterIP
	if _, err := netip.ParseAddr(clusterIP); err != nil {
		t.Fatalf("service got no ClusterIP: %q", clusterIP)
	}
	e.pod(appPod(ns, "web-5f7c9-a", "10.1.0.1", true))
	e.pod(appPod(ns, "web-5f7c9-b", "10.1.0.2", false))

	byName := stream(t, e.pb, "web."+ns+".svc.cluster.local:80", "")
	byShort := stream(t, e.pb, "web:80", ns)
	byIP := stream(t, e.pb, clusterIP+":80", "")
	all := []func() string{byName, byShort, byIP}
	expect := func(step string, want string) {
		t.Helper()
		for i, next := range all {
			if got := next(); got != want {
				t.Fatalf("%s: stream %d got %q, want %q", step, i, got, want)
			}
		}
	}
	expect("service without endpoints", "none(exists)")

	s := e.slice(newSlice(ns, "web-1", "web", "http", 8080,
		sliceEP{ip: "10.1.0.1", pod: "web-5f7c9-a", zone: "z1"}, sliceEP{ip: "10.1.0.2", pod: "web-5f7c9-b"}))
	expect("slice created", "+10.1.0.1:8080@z1,10.1.0.2:8080")

	// Scale up.
	e.pod(appPod(ns, "web-5f7c9-c", "10.1.0.3", true))
	s.Endpoints = append(s.Endpoints, discoveryv1.Endpoint{Addresses: []string{"10.1.0.3"},
		TargetRef: &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "web-5f7c9-c"}})
	s = e.updateSlice(s)
	expect("scaled up", "+10.1.0.3:8080")

	// Readiness lost, then back.
	s.Endpoints[1].Conditions.Ready = ptr(false)
	s = e.updateSlice(s)
	expect("not ready", "-10.1.0.2:8080")
	s.Endpoints[1].Conditions.Ready = ptr(true)
	s = e.updateSlice(s)
	expect("ready again", "+10.1.0.2:8080")

	// Terminating (not ready, still serving) while others are ready: out.
	s.Endpoints[0].Conditions = discoveryv1.EndpointConditions{Ready: ptr(false), Serving: ptr(true), Terminating: ptr(true)}
	s = e.updateSlice(s)
	expect("terminating", "-10.1.0.1:8080")

	// Scale down to nothing.
	if err := e.cs.DiscoveryV1().EndpointSlices(ns).Delete(e.ctx(), s.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("slice deleted", "none(exists)")

	if err := e.cs.CoreV1().Services(ns).Delete(e.ctx(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect("service deleted", "none(unknown)")
}

// A pod's metadata reaches its endpoints: injecting it later makes the
// endpoint meshed (identity, HTTP/2) without any slice change.
func TestKubePodChangeUpdatesIdentity(t *testing.T) {
	e := newKubeEnv(t)
	ns := e.ns
	e.service(ns, "api", "", corev1.ServicePort{Port: 80})
	p := e.pod(appPod(ns, "api-1", "10.1.1.1", false))
	e.slice(newSlice(ns, "api-1", "api", "", 80, sliceEP{ip: "10.1.1.1", pod: "api-1"}))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := e.pb.Get(ctx, &pb.GetRequest{Authority: "api." + ns + ":80"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got := u.GetAdd().GetEndpoints(); len(got) != 1 || got[0].Identity != "" || got[0].Protocol != pb.ProtocolHint_PROTOCOL_HINT_UNKNOWN {
		t.Fatalf("before injection: %v", got)
	}
	p.Annotations = map[string]string{ProxyVersionAnnotation: "dev"}
	if _, err := e.cs.CoreV1().Pods(ns).Update(e.ctx(), p, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	u, err = st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	want := "spiffe://cluster.local/ns/" + ns + "/sa/default"
	if got := u.GetAdd().GetEndpoints(); len(got) != 1 || got[0].Identity != want || got[0].Protocol != pb.ProtocolHint_PROTOCOL_HINT_HTTP2 ||
		got[0].MetricLabels["deployment"] != "web" {
		t.Fatalf("after injection: %v", got)
	}
}

func TestKubeNamedPortsHeadlessAndNamespaces(t *testing.T) {
	e := newKubeEnv(t)
	ns := e.ns
	other := e.c.Namespace(t)

	// Named target port: pods of two versions listen on different numbers.
	e.service(ns, "named", "", corev1.ServicePort{Name: "web", Port: 80, TargetPort: intstr.FromString("http")})
	e.slice(newSlice(ns, "named-a", "named", "web", 8080, sliceEP{ip: "10.2.0.1"}))
	e.slice(newSlice(ns, "named-b", "named", "web", 9090, sliceEP{ip: "10.2.0.2"}))
	if got := stream(t, e.pb, "named."+ns+".svc:80", "")(); got != "+10.2.0.1:8080,10.2.0.2:9090" {
		t.Errorf("named port: %q", got)
	}

	// Headless: by service name, all pods; by pod hostname, that one.
	e.service(ns, "db", "None", corev1.ServicePort{Name: "pg", Port: 5432})
	e.slice(newSlice(ns, "db-1", "db", "pg", 5432, sliceEP{ip: "10.2.1.1", hostname: "db-0"}, sliceEP{ip: "10.2.1.2", hostname: "db-1"}))
	if got := stream(t, e.pb, "db."+ns+":5432", "")(); got != "+10.2.1.1:5432,10.2.1.2:5432" {
		t.Errorf("headless: %q", got)
	}
	if got := stream(t, e.pb, "db-1.db."+ns+".svc.cluster.local:5432", "")(); got != "+10.2.1.2:5432" {
		t.Errorf("headless hostname: %q", got)
	}

	// Cross-namespace: the same short name means the caller's namespace.
	e.service(other, "named", "", corev1.ServicePort{Name: "web", Port: 80})
	e.slice(newSlice(other, "named-x", "named", "web", 7070, sliceEP{ip: "10.2.2.1"}))
	if got := stream(t, e.pb, "named:80", other)(); got != "+10.2.2.1:7070" {
		t.Errorf("short name from %s: %q", other, got)
	}
	if got := stream(t, e.pb, "named."+other+":80", ns)(); got != "+10.2.2.1:7070" {
		t.Errorf("other namespace by name: %q", got)
	}
	if got := stream(t, e.pb, "db:5432", other)(); got != "none(unknown)" {
		t.Errorf("short name of a service in another namespace: %q", got)
	}
}

func TestKubePodIPAndBadInput(t *testing.T) {
	e := newKubeEnv(t)
	ns := e.ns
	e.pod(appPod(ns, "solo", "10.3.0.7", true))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := e.pb.Get(ctx, &pb.GetRequest{Authority: "10.3.0.7:9000"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	eps := u.GetAdd().GetEndpoints()
	if len(eps) != 1 || addrPortOf(eps[0].Address).String() != "10.3.0.7:9000" ||
		eps[0].Identity != "spiffe://cluster.local/ns/"+ns+"/sa/default" || eps[0].MetricLabels["pod"] != "solo" {
		t.Fatalf("pod IP: %v", eps)
	}
	if err := e.cs.CoreV1().Pods(ns).Delete(e.ctx(), "solo", metav1.DeleteOptions{GracePeriodSeconds: ptr(int64(0))}); err != nil {
		t.Fatal(err)
	}
	u, err = st.Recv()
	if err != nil || u.GetNoEndpoints() == nil || u.GetNoEndpoints().Exists {
		t.Fatalf("after pod deletion: %v, %v", u, err)
	}

	for _, tt := range []struct{ authority, ns, want string }{
		{"nope." + ns + ".svc.cluster.local:80", "", "none(unknown)"},
		{"10.250.0.1:80", "", "none(unknown)"},
		{"example.com:443", "", "none(unknown)"},
		{"web." + ns, "", "error InvalidArgument"},
		{"web:80", "", "error InvalidArgument"},
		{"web:80", "Bad_NS", "error InvalidArgument"},
		{"we b:80", "", "error InvalidArgument"},
		{"[::1:80", "", "error InvalidArgument"},
	} {
		if got := stream(t, e.pb, tt.authority, tt.ns)(); got != tt.want {
			t.Errorf("%q (ns %q): %q, want %q", tt.authority, tt.ns, got, tt.want)
		}
	}
}
