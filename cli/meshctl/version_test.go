package meshctl

import (
	"context"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/test/kubetest"
)

func TestVersionClientOnly(t *testing.T) {
	r := meshctl(t, "", "version --client --kubeconfig /nonexistent")
	if r.code != 0 || r.stdout != "Client version: dev\n" {
		t.Errorf("%+v", r)
	}
}

// Without a mesh config, the control plane's version is its image tag;
// without either, version says so and fails.
func TestVersionFromDeployment(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	kc := "--kubeconfig=" + c.Kubeconfig()
	r := meshctl(t, "", "version", kc, "-n", ns)
	if r.code != 1 || !strings.Contains(r.stdout, "Control plane version: unavailable") || !strings.Contains(r.stderr, "no control plane found in namespace "+ns) {
		t.Errorf("empty namespace: %+v", r)
	}
	labels := map[string]string{"app": "d"}
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "meshlet-destination"},
		Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "d", Image: "registry.example:5000/mesh/meshlet-destination:v9.8.7"}}},
			},
		},
	}
	if _, err := c.Client().AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	r = meshctl(t, "", "version", kc, "-n", ns)
	if r.code != 0 || !strings.Contains(r.stdout, "Control plane version: v9.8.7\n") {
		t.Errorf("from the image tag: %+v", r)
	}
}
