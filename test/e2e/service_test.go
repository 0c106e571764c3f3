//go:build linux

package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// servicePorts are the app's ports, each a Service port of the same
// number and name.
var servicePorts = []struct {
	name string
	port int32
}{{"http", httpPort}, {"grpc", grpcPort}, {"banner", bannerPort}, {"echo", echoPort}}

// createService makes a ClusterIP Service (the API server picks the
// address from kubetest.ServiceCIDR) and returns it.
func (m *mesh) createService(t *testing.T, ns, name string, selector map[string]string) *corev1.Service {
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: selector},
	}
	for _, p := range servicePorts {
		svc.Spec.Ports = append(svc.Spec.Ports, corev1.ServicePort{Name: p.name, Port: p.port, TargetPort: intstr.FromInt32(p.port), Protocol: corev1.ProtocolTCP})
	}
	got, err := m.client.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("e2e: create service %s/%s: %v", ns, name, err)
	}
	if !strings.HasPrefix(got.Spec.ClusterIP, "10.") {
		t.Fatalf("e2e: service %s/%s got ClusterIP %q, want one of %s", ns, name, got.Spec.ClusterIP, serviceCIDR)
	}
	return got
}

// endpointState is one pod's entry in the service's EndpointSlice.
type endpointState struct {
	pod         *pod
	notReady    bool
	terminating bool
}

// setEndpoints writes the service's one EndpointSlice (what the
// EndpointSlice controller would, which does not run here).
func (m *mesh) setEndpoints(t *testing.T, ns, svc string, eps []endpointState) {
	t.Helper()
	ctx := context.Background()
	slice := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: svc + "-e2e", Labels: map[string]string{discoveryv1.LabelServiceName: svc, discoveryv1.LabelManagedBy: "meshlet-e2e"}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	for _, p := range servicePorts {
		slice.Ports = append(slice.Ports, discoveryv1.EndpointPort{Name: ptr.To(p.name), Port: ptr.To(p.port), Protocol: ptr.To(corev1.ProtocolTCP)})
	}
	for _, e := range eps {
		ready := !e.notReady && !e.terminating
		slice.Endpoints = append(slice.Endpoints, discoveryv1.Endpoint{
			Addresses:  []string{e.pod.ip},
			Conditions: discoveryv1.EndpointConditions{Ready: ptr.To(ready), Serving: ptr.To(!e.notReady), Terminating: ptr.To(e.terminating)},
			TargetRef:  &corev1.ObjectReference{Kind: "Pod", Namespace: e.pod.namespace, Name: e.pod.name, UID: e.pod.obj.UID},
		})
	}
	slices := m.client.DiscoveryV1().EndpointSlices(ns)
	cur, err := slices.Get(ctx, slice.Name, metav1.GetOptions{})
	if err == nil {
		slice.ResourceVersion = cur.ResourceVersion
		_, err = slices.Update(ctx, slice, metav1.UpdateOptions{})
	} else {
		_, err = slices.Create(ctx, slice, metav1.CreateOptions{})
	}
	if err != nil {
		t.Fatalf("e2e: write EndpointSlice %s/%s: %v", ns, slice.Name, err)
	}
}

// meshedNamespace creates a test namespace annotated for injection.
func (m *mesh) meshedNamespace(t *testing.T, inject bool) string {
	ns := m.kube.Namespace(t)
	if !inject {
		return ns
	}
	ctx := context.Background()
	obj, err := m.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if obj.Annotations == nil {
		obj.Annotations = map[string]string{}
	}
	obj.Annotations["meshlet.io/inject"] = "enabled"
	if _, err := m.client.CoreV1().Namespaces().Update(ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// The injector learns namespaces from an informer: wait until a dry-run
	// pod comes back injected, so the first real pod is.
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "e2e.local/app:1"}}},
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := m.client.CoreV1().Pods(ns).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("e2e: dry-run pod in %s: %v", ns, err)
		}
		if pc, _ := injected(got); pc != nil {
			return ns
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: pods in namespace %s (meshlet.io/inject: enabled) are still not injected after 30s", ns)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
