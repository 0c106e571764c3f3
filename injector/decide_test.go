package injector

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestDecide(t *testing.T) {
	enabled := map[string]string{AnnotationInject: InjectEnabled}
	disabled := map[string]string{AnnotationInject: InjectDisabled}
	cases := []struct {
		name      string
		podAnn    map[string]string
		nsAnn     map[string]string
		namespace string
		spec      corev1.PodSpec
		want      Decision
	}{
		{"nothing annotated", nil, nil, "shop", corev1.PodSpec{}, Decision{false, ReasonNotEnabled}},
		{"namespace enabled", nil, enabled, "shop", corev1.PodSpec{}, Decision{true, ReasonNamespaceEnabled}},
		{"namespace disabled", nil, disabled, "shop", corev1.PodSpec{}, Decision{false, ReasonNamespaceDisabled}},
		{"pod enabled", enabled, nil, "shop", corev1.PodSpec{}, Decision{true, ReasonPodEnabled}},
		{"pod enabled wins over namespace disabled", enabled, disabled, "shop", corev1.PodSpec{}, Decision{true, ReasonPodEnabled}},
		{"pod disabled wins over namespace enabled", disabled, enabled, "shop", corev1.PodSpec{}, Decision{false, ReasonPodDisabled}},
		{"invalid pod value", map[string]string{AnnotationInject: "yes"}, enabled, "shop", corev1.PodSpec{}, Decision{false, ReasonInvalidAnnotation}},
		{"unknown namespace value is not enabled", nil, map[string]string{AnnotationInject: "true"}, "shop", corev1.PodSpec{}, Decision{false, ReasonNotEnabled}},
		{"host network", enabled, enabled, "shop", corev1.PodSpec{HostNetwork: true}, Decision{false, ReasonHostNetwork}},
		{"kube-system", enabled, enabled, "kube-system", corev1.PodSpec{}, Decision{false, ReasonKubeSystem}},
		{"control plane namespace", enabled, enabled, "meshlet", corev1.PodSpec{}, Decision{false, ReasonControlPlane}},
		{"already injected (annotation)", map[string]string{AnnotationInject: InjectEnabled, AnnotationProxyVersion: "v1"}, nil, "shop", corev1.PodSpec{}, Decision{false, ReasonAlreadyInjected}},
		{"already injected (native sidecar)", enabled, nil, "shop", corev1.PodSpec{InitContainers: []corev1.Container{{Name: ProxyContainerName}}}, Decision{false, ReasonAlreadyInjected}},
		{"already injected (container)", enabled, nil, "shop", corev1.PodSpec{Containers: []corev1.Container{{Name: ProxyContainerName}}}, Decision{false, ReasonAlreadyInjected}},
		{"unknown namespace (manifest without one)", enabled, nil, "", corev1.PodSpec{}, Decision{true, ReasonPodEnabled}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			meta := metav1.ObjectMeta{Annotations: tc.podAnn}
			got := Decide(&meta, &tc.spec, tc.namespace, tc.nsAnn, testConfig())
			if got != tc.want {
				t.Errorf("Decide = %+v, want %+v", got, tc.want)
			}
		})
	}
	cfg := testConfig()
	cfg.ControlPlaneNamespace = "mesh-system"
	meta := metav1.ObjectMeta{Annotations: enabled}
	if d := Decide(&meta, &corev1.PodSpec{}, "mesh-system", nil, cfg); d.Reason != ReasonControlPlane {
		t.Errorf("custom control-plane namespace: %+v", d)
	}
	if d := Decide(&meta, &corev1.PodSpec{}, "meshlet", nil, cfg); !d.Inject {
		t.Errorf("namespace meshlet with a custom control plane namespace: %+v", d)
	}
}
