package injector

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reason says why a pod is or isn't injected. The values are metric labels
// and appear in meshctl's summaries, so they are stable.
type Reason string

const (
	ReasonPodEnabled        Reason = "pod-enabled"
	ReasonNamespaceEnabled  Reason = "namespace-enabled"
	ReasonPodDisabled       Reason = "pod-disabled"
	ReasonNamespaceDisabled Reason = "namespace-disabled"
	ReasonNotEnabled        Reason = "not-enabled"
	ReasonHostNetwork       Reason = "host-network"
	ReasonKubeSystem        Reason = "kube-system"
	ReasonControlPlane      Reason = "control-plane"
	ReasonAlreadyInjected   Reason = "already-injected"
	ReasonInvalidAnnotation Reason = "invalid-inject-annotation"
)

// Decision is the outcome of Decide.
type Decision struct {
	Inject bool
	Reason Reason
}

// Decide says whether a pod (or pod template) in namespace, whose Namespace
// object carries nsAnnotations, is to be injected. The order of the checks
// is the order of precedence: pods that can never be meshed (host network,
// kube-system, the control plane, already injected) are skipped whatever
// their annotations say; then the pod's meshlet.io/inject wins over the
// namespace's; without either the pod is not injected.
//
// An inject annotation with another value than enabled/disabled skips the
// pod with ReasonInvalidAnnotation rather than guessing.
func Decide(meta *metav1.ObjectMeta, spec *corev1.PodSpec, namespace string, nsAnnotations map[string]string, cfg Config) Decision {
	cfg = cfg.WithDefaults()
	switch {
	case spec.HostNetwork:
		// The proxy would capture the node's traffic.
		return Decision{Reason: ReasonHostNetwork}
	case namespace == metav1.NamespaceSystem:
		return Decision{Reason: ReasonKubeSystem}
	case namespace != "" && namespace == cfg.ControlPlaneNamespace:
		// The control plane can't depend on itself to start.
		return Decision{Reason: ReasonControlPlane}
	case Injected(meta, spec):
		return Decision{Reason: ReasonAlreadyInjected}
	}
	if v, ok := meta.Annotations[AnnotationInject]; ok {
		switch v {
		case InjectEnabled:
			return Decision{Inject: true, Reason: ReasonPodEnabled}
		case InjectDisabled:
			return Decision{Reason: ReasonPodDisabled}
		default:
			return Decision{Reason: ReasonInvalidAnnotation}
		}
	}
	switch nsAnnotations[AnnotationInject] {
	case InjectEnabled:
		return Decision{Inject: true, Reason: ReasonNamespaceEnabled}
	case InjectDisabled:
		return Decision{Reason: ReasonNamespaceDisabled}
	}
	return Decision{Reason: ReasonNotEnabled}
}

// Injected reports whether the pod already has the proxy (in either mode)
// or the injector's mark.
func Injected(meta *metav1.ObjectMeta, spec *corev1.PodSpec) bool {
	if _, ok := meta.Annotations[AnnotationProxyVersion]; ok {
		return true
	}
	for _, c := range spec.InitContainers {
		if c.Name == ProxyContainerName || c.Name == InitContainerName {
			return true
		}
	}
	for _, c := range spec.Containers {
		if c.Name == ProxyContainerName {
			return true
		}
	}
	return false
}
