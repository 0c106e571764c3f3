package destination

import (
	"net/netip"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// Index names of the informers' indexers.
const (
	indexClusterIP = "clusterIP" // Service by each ClusterIP
	indexService   = "service"   // EndpointSlice by "ns/service-name"
	indexSlicePod  = "pod"       // EndpointSlice by "ns/pod" of its endpoints
	indexPodIP     = "podIP"     // Pod by each pod IP (not host-network, not finished)
)

// Names the translation looks for on pods.
const (
	ProxyVersionAnnotation = "meshlet.io/proxy-version"
	IdentityAnnotation     = "meshlet.io/identity"
	ProxyContainerName     = "meshlet-proxy"
)

// trim drops what the destination never reads before an object enters the
// informer cache: managed fields everywhere, and for pods everything but
// what identity, protocol hints and labels need. Pods are most of a
// cluster's objects, so this is most of the memory the caches take.
func trim(obj any) (any, error) {
	switch o := obj.(type) {
	case *corev1.Pod:
		return trimPod(o), nil
	case *corev1.Service:
		o.ManagedFields = nil
		delete(o.Annotations, corev1.LastAppliedConfigAnnotation)
		return o, nil
	case *discoveryv1.EndpointSlice:
		o.ManagedFields = nil
		delete(o.Annotations, corev1.LastAppliedConfigAnnotation)
		return o, nil
	}
	return obj, nil
}

func trimPod(p *corev1.Pod) *corev1.Pod {
	out := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name:            p.Name,
			Namespace:       p.Namespace,
			UID:             p.UID,
			ResourceVersion: p.ResourceVersion,
			OwnerReferences: p.OwnerReferences,
		},
		Spec: corev1.PodSpec{
			ServiceAccountName: p.Spec.ServiceAccountName,
			HostNetwork:        p.Spec.HostNetwork,
		},
		Status: corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
	if h, ok := p.Labels["pod-template-hash"]; ok {
		out.Labels = map[string]string{"pod-template-hash": h}
	}
	for k, v := range p.Annotations {
		if k == ProxyVersionAnnotation || k == IdentityAnnotation || strings.HasPrefix(k, "config.meshlet.io/") {
			if out.Annotations == nil {
				out.Annotations = make(map[string]string)
			}
			out.Annotations[k] = v
		}
	}
	for _, c := range p.Spec.Containers {
		out.Spec.Containers = append(out.Spec.Containers, corev1.Container{Name: c.Name})
	}
	for _, c := range p.Spec.InitContainers {
		out.Spec.InitContainers = append(out.Spec.InitContainers, corev1.Container{Name: c.Name})
	}
	return out
}

// podChanged reports whether two trimmed pods differ in anything the
// translation reads (readiness comes from EndpointSlices, not pods).
func podChanged(a, b *corev1.Pod) bool {
	a2, b2 := *a, *b
	a2.ResourceVersion, b2.ResourceVersion = "", ""
	return !equality.Semantic.DeepEqual(&a2, &b2)
}

func indexByClusterIP(obj any) ([]string, error) {
	svc, ok := obj.(*corev1.Service)
	if !ok {
		return nil, nil
	}
	return serviceIPs(svc), nil
}

// serviceIPs are a Service's cluster IPs in canonical form (none for
// headless and ExternalName services).
func serviceIPs(svc *corev1.Service) []string {
	ips := svc.Spec.ClusterIPs
	if len(ips) == 0 && svc.Spec.ClusterIP != "" {
		ips = []string{svc.Spec.ClusterIP}
	}
	return canonicalIPs(ips)
}

func indexByService(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	if name := s.Labels[discoveryv1.LabelServiceName]; name != "" {
		return []string{s.Namespace + "/" + name}, nil
	}
	return nil, nil
}

func indexSliceByPod(obj any) ([]string, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return nil, nil
	}
	var out []string
	for _, ep := range s.Endpoints {
		if ref := ep.TargetRef; ref != nil && ref.Kind == "Pod" {
			out = append(out, refNamespace(ref, s.Namespace)+"/"+ref.Name)
		}
	}
	return out, nil
}

func indexByPodIP(obj any) ([]string, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, nil
	}
	return podIPs(p), nil
}

// podIPs are the IPs a pod owns alone: none for host-network pods (they
// share the node's) or finished pods (their IPs may be reused).
func podIPs(p *corev1.Pod) []string {
	if p.Spec.HostNetwork || p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return nil
	}
	ips := make([]string, 0, len(p.Status.PodIPs)+1)
	for _, ip := range p.Status.PodIPs {
		ips = append(ips, ip.IP)
	}
	if len(ips) == 0 && p.Status.PodIP != "" {
		ips = append(ips, p.Status.PodIP)
	}
	return canonicalIPs(ips)
}

func canonicalIPs(ips []string) []string {
	var out []string
	for _, s := range ips {
		if ip, err := netip.ParseAddr(s); err == nil {
			out = append(out, ip.Unmap().String())
		}
	}
	return out
}

func refNamespace(ref *corev1.ObjectReference, def string) string {
	if ref.Namespace != "" {
		return ref.Namespace
	}
	return def
}

// unwrap returns the object of a delete event, which may be a tombstone
// when the watch missed the deletion.
func unwrap(obj any) any {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		return t.Obj
	}
	return obj
}
