package destination

import (
	"context"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes/fake"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
)

func ptr[T any](v T) *T { return &v }

type podOpt func(*corev1.Pod)

func newPod(ns, name, ip string, opts ...podOpt) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.PodSpec{ServiceAccountName: "web-sa", Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
	for _, o := range opts {
		o(p)
	}
	return p
}

func injected(p *corev1.Pod) {
	p.Annotations = map[string]string{ProxyVersionAnnotation: "v1"}
}

func ownedBy(kind, name, hash string) podOpt {
	return func(p *corev1.Pod) {
		p.OwnerReferences = []metav1.OwnerReference{{Kind: kind, Name: name, Controller: ptr(true), APIVersion: "apps/v1"}}
		if hash != "" {
			p.Labels = map[string]string{"pod-template-hash": hash}
		}
	}
}

func newService(ns, name, clusterIP string, ports ...corev1.ServicePort) *corev1.Service {
	return &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       corev1.ServiceSpec{ClusterIP: clusterIP, ClusterIPs: []string{clusterIP}, Ports: ports},
	}
}

type sliceEP struct {
	ip, pod, zone, hostname string
	ready, serving, term    *bool
}

func newSlice(ns, name, service string, portName string, port int32, eps ...sliceEP) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, Labels: map[string]string{discoveryv1.LabelServiceName: service}},
		AddressType: discoveryv1.AddressTypeIPv4,
		Ports:       []discoveryv1.EndpointPort{{Name: ptr(portName), Port: ptr(port), Protocol: ptr(corev1.ProtocolTCP)}},
	}
	for _, e := range eps {
		de := discoveryv1.Endpoint{
			Addresses:  []string{e.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: e.ready, Serving: e.serving, Terminating: e.term},
		}
		if e.pod != "" {
			de.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: e.pod}
		}
		if e.zone != "" {
			de.Zone = ptr(e.zone)
		}
		if e.hostname != "" {
			de.Hostname = ptr(e.hostname)
		}
		s.Endpoints = append(s.Endpoints, de)
	}
	return s
}

// translationBackend runs the Kubernetes backend over a fake clientset
// holding objs: only for the pure translation logic; everything that talks
// to an API server is tested against a real one (kube_test.go).
func translationBackend(t *testing.T, objs ...runtime.Object) *KubeBackend {
	t.Helper()
	k, err := NewKubeBackend(KubeConfig{Client: fake.NewClientset(objs...), TrustDomain: "example.org"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = k.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for !k.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("informers did not sync")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return k
}

func TestTranslation(t *testing.T) {
	const ns = "shop"
	httpPort := corev1.ServicePort{Name: "http", Port: 80, TargetPort: intstr.FromString("web"), Protocol: corev1.ProtocolTCP}
	objs := []runtime.Object{
		newService(ns, "web", "10.96.0.10", httpPort, corev1.ServicePort{Name: "db", Port: 6000, AppProtocol: ptr("tcp")}),
		newPod(ns, "web-abc12-x1", "10.1.0.1", injected, ownedBy("ReplicaSet", "web-abc12", "abc12")),
		newPod(ns, "web-abc12-x2", "10.1.0.2", ownedBy("ReplicaSet", "web-abc12", "abc12")),
		newPod(ns, "web-0", "10.1.0.3", func(p *corev1.Pod) {
			p.Spec.InitContainers = []corev1.Container{{Name: ProxyContainerName}}
			p.Spec.ServiceAccountName = ""
			p.Annotations = map[string]string{OpaquePortsAnnotation: "9090, bogus"}
		}, ownedBy("StatefulSet", "web", "")),
		newPod(ns, "host", "10.1.0.9", func(p *corev1.Pod) { p.Spec.HostNetwork = true }),
		// Named target port "web" resolves to 8080 on some pods and 9090 on
		// others: the controller makes one slice per port number.
		newSlice(ns, "web-a", "web", "http", 8080,
			sliceEP{ip: "10.1.0.1", pod: "web-abc12-x1", zone: "z1"},
			sliceEP{ip: "10.1.0.2", pod: "web-abc12-x2", ready: ptr(true), zone: "z2"},
			sliceEP{ip: "10.1.0.4", ready: ptr(false)},
			sliceEP{ip: "10.1.0.5", ready: ptr(false), serving: ptr(true), term: ptr(true)},
		),
		newSlice(ns, "web-b", "web", "http", 9090, sliceEP{ip: "10.1.0.3", pod: "web-0", hostname: "web-0"}),
		newSlice(ns, "web-db", "web", "db", 6000, sliceEP{ip: "10.1.0.1", pod: "web-abc12-x1"}),
		// No annotation: the default list makes 5432 opaque; an injector
		// identity annotation with another trust domain is used, one naming
		// another ServiceAccount is not.
		newService(ns, "pg", "10.96.0.14", corev1.ServicePort{Port: 5432}),
		newPod(ns, "pg-0", "10.1.0.20", injected, func(p *corev1.Pod) {
			p.Annotations[IdentityAnnotation] = "spiffe://corp.example/ns/shop/sa/web-sa"
		}),
		newPod(ns, "pg-1", "10.1.0.21", injected, func(p *corev1.Pod) {
			p.Annotations[IdentityAnnotation] = "spiffe://example.org/ns/shop/sa/admin"
		}),
		newSlice(ns, "pg-1", "pg", "", 5432, sliceEP{ip: "10.1.0.20", pod: "pg-0"}, sliceEP{ip: "10.1.0.21", pod: "pg-1"}),
		// A service without selector: a user-managed slice, no pods.
		newService(ns, "ext", "10.96.0.11", corev1.ServicePort{Port: 443}),
		newSlice(ns, "ext-1", "ext", "", 8443, sliceEP{ip: "192.168.7.7"}),
		func() *corev1.Service {
			s := newService(ns, "opq", "10.96.0.12", corev1.ServicePort{Port: 3306})
			s.Annotations = map[string]string{OpaquePortsAnnotation: "3306"}
			return s
		}(),
		newSlice(ns, "opq-1", "opq", "", 3306, sliceEP{ip: "10.1.0.1", pod: "web-abc12-x1"}),
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "named"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "example.com"}},
		// Draining: every endpoint terminating, the serving ones are kept.
		newService(ns, "drain", "10.96.0.13", corev1.ServicePort{Port: 80}),
		newSlice(ns, "drain-1", "drain", "", 80,
			sliceEP{ip: "10.2.0.1", ready: ptr(false), serving: ptr(true), term: ptr(true)},
			sliceEP{ip: "10.2.0.2", ready: ptr(false), serving: ptr(false), term: ptr(true)}),
	}
	k := translationBackend(t, objs...)

	wantWeb := map[string]*pb.Endpoint{
		"10.1.0.1:8080": {Weight: 1, Identity: "spiffe://example.org/ns/shop/sa/web-sa", Protocol: pb.ProtocolHint_PROTOCOL_HINT_HTTP2, Zone: "z1",
			MetricLabels: map[string]string{"namespace": ns, "service": "web", "pod": "web-abc12-x1", "deployment": "web", "serviceaccount": "web-sa"}},
		"10.1.0.2:8080": {Weight: 1, Zone: "z2",
			MetricLabels: map[string]string{"namespace": ns, "service": "web", "pod": "web-abc12-x2", "deployment": "web", "serviceaccount": "web-sa"}},
		"10.1.0.3:9090": {Weight: 1, Identity: "spiffe://example.org/ns/shop/sa/default", Protocol: pb.ProtocolHint_PROTOCOL_HINT_OPAQUE,
			MetricLabels: map[string]string{"namespace": ns, "service": "web", "pod": "web-0", "statefulset": "web", "serviceaccount": "default"}},
	}
	tests := []struct {
		name   string
		topic  kubeTopic
		exists bool
		want   map[string]*pb.Endpoint
	}{
		{"service port with named target port", kubeTopic{namespace: ns, service: "web", port: 80}, true, wantWeb},
		{"cluster IP", kubeTopic{ip: netip.MustParseAddr("10.96.0.10"), port: 80}, true, wantWeb},
		{"headless hostname", kubeTopic{namespace: ns, service: "web", hostname: "web-0", port: 80}, true,
			map[string]*pb.Endpoint{"10.1.0.3:9090": wantWeb["10.1.0.3:9090"]}},
		{"default opaque ports, identity annotation", kubeTopic{namespace: ns, service: "pg", port: 5432}, true, map[string]*pb.Endpoint{
			"10.1.0.20:5432": {Weight: 1, Identity: "spiffe://corp.example/ns/shop/sa/web-sa", Protocol: pb.ProtocolHint_PROTOCOL_HINT_OPAQUE,
				MetricLabels: map[string]string{"namespace": ns, "service": "pg", "pod": "pg-0", "serviceaccount": "web-sa"}},
			"10.1.0.21:5432": {Weight: 1, Identity: "spiffe://example.org/ns/shop/sa/web-sa", Protocol: pb.ProtocolHint_PROTOCOL_HINT_OPAQUE,
				MetricLabels: map[string]string{"namespace": ns, "service": "pg", "pod": "pg-1", "serviceaccount": "web-sa"}}}},
		{"appProtocol tcp is opaque even when meshed", kubeTopic{namespace: ns, service: "web", port: 6000}, true, map[string]*pb.Endpoint{
			"10.1.0.1:6000": {Weight: 1, Identity: "spiffe://example.org/ns/shop/sa/web-sa", Protocol: pb.ProtocolHint_PROTOCOL_HINT_OPAQUE,
				MetricLabels: wantWeb["10.1.0.1:8080"].MetricLabels}}},
		{"service opaque-ports annotation", kubeTopic{namespace: ns, service: "opq", port: 3306}, true, map[string]*pb.Endpoint{
			"10.1.0.1:3306": {Weight: 1, Identity: "spiffe://example.org/ns/shop/sa/web-sa", Protocol: pb.ProtocolHint_PROTOCOL_HINT_OPAQUE,
				MetricLabels: map[string]string{"namespace": ns, "service": "opq", "pod": "web-abc12-x1", "deployment": "web", "serviceaccount": "web-sa"}}}},
		{"service without selector", kubeTopic{namespace: ns, service: "ext", port: 443}, true, map[string]*pb.Endpoint{
			"192.168.7.7:8443": {Weight: 1, MetricLabels: map[string]string{"namespace": ns, "service": "ext"}}}},
		{"pod IP", kubeTopic{ip: netip.MustParseAddr("10.1.0.1"), port: 7000}, true, map[string]*pb.Endpoint{
			"10.1.0.1:7000": {Weight: 1, Identity: "spiffe://example.org/ns/shop/sa/web-sa", Protocol: pb.ProtocolHint_PROTOCOL_HINT_HTTP2, Zone: "z1",
				MetricLabels: map[string]string{"namespace": ns, "pod": "web-abc12-x1", "deployment": "web", "serviceaccount": "web-sa"}}}},
		{"terminating but serving, when nothing is ready", kubeTopic{namespace: ns, service: "drain", port: 80}, true, map[string]*pb.Endpoint{
			"10.2.0.1:80": {Weight: 1, MetricLabels: map[string]string{"namespace": ns, "service": "drain"}}}},
		{"host-network pod IP is not a pod IP", kubeTopic{ip: netip.MustParseAddr("10.1.0.9"), port: 80}, false, nil},
		{"unknown IP", kubeTopic{ip: netip.MustParseAddr("10.9.9.9"), port: 80}, false, nil},
		{"unknown port of a service", kubeTopic{namespace: ns, service: "web", port: 81}, false, nil},
		{"unknown service", kubeTopic{namespace: ns, service: "nope", port: 80}, false, nil},
		{"other namespace", kubeTopic{namespace: "other", service: "web", port: 80}, false, nil},
		{"ExternalName", kubeTopic{namespace: ns, service: "named", port: 80}, false, nil},
		{"not a cluster name", kubeTopic{port: 80}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := k.compute(tt.topic)
			if got.exists != tt.exists {
				t.Fatalf("exists = %v, want %v", got.exists, tt.exists)
			}
			if len(got.eps) != len(tt.want) {
				t.Fatalf("got %d endpoints %v, want %d", len(got.eps), keys(got), len(tt.want))
			}
			for addr, want := range tt.want {
				e := got.eps[netip.MustParseAddrPort(addr)]
				if e == nil {
					t.Fatalf("missing %s; have %v", addr, keys(got))
				}
				want.Address = tcpAddress(netip.MustParseAddrPort(addr))
				if e.String() != want.String() {
					t.Errorf("%s:\n got  %v\n want %v", addr, e, want)
				}
			}
		})
	}
	if got := value(k.m.badConfig.WithLabelValues("opaque_ports_annotation")); got == 0 {
		t.Error("bad opaque-ports annotation not counted")
	}
	if got := value(k.m.badConfig.WithLabelValues("identity_annotation")); got == 0 {
		t.Error("foreign identity annotation not counted")
	}
}

func keys(s snapshot) []string {
	var out []string
	for a := range s.eps {
		out = append(out, a.String())
	}
	return out
}

func TestWorkloadOf(t *testing.T) {
	tests := []struct {
		pod        *corev1.Pod
		kind, name string
	}{
		{newPod("n", "p", "", ownedBy("ReplicaSet", "api-7d9f8", "7d9f8")), "deployment", "api"},
		{newPod("n", "p", "", ownedBy("ReplicaSet", "api-7d9f8", "")), "replicaset", "api-7d9f8"},
		{newPod("n", "p", "", ownedBy("ReplicaSet", "api", "zzz")), "replicaset", "api"},
		{newPod("n", "p", "", ownedBy("DaemonSet", "agent", "")), "daemonset", "agent"},
		{newPod("n", "p", "", ownedBy("Job", "batch-1", "")), "job", "batch-1"},
		{newPod("n", "p", ""), "", ""},
	}
	for _, tt := range tests {
		if kind, name := workloadOf(tt.pod); kind != tt.kind || name != tt.name {
			t.Errorf("%v: got %s/%s, want %s/%s", tt.pod.OwnerReferences, kind, name, tt.kind, tt.name)
		}
	}
}
