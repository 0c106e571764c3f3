package kubetest

import (
	"context"
	"errors"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// eventually polls cond every 50 ms until it holds or 30 s pass.
func eventually(t *testing.T, what string, cond func() (bool, error)) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, err := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s (last error: %v)", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// With Options.ControllerManager the cluster's controllers work: what
// tests of `meshctl install` (Deployments) and of EndpointSlice-driven
// discovery need.
func TestControllerManager(t *testing.T) {
	b := binariesOrSkip(t)
	if b.ControllerManager == "" {
		t.Skip("the build in " + b.Dir + " has no kube-controller-manager; run `make kube-bins`")
	}
	c := StartWith(t, Options{ControllerManager: true})
	ctx := context.Background()
	client := c.Client()

	// A namespace created behind the harness' back still gets its
	// ServiceAccount and root CA, from the controllers.
	ns := "plain"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "default ServiceAccount and kube-root-ca.crt from the controllers", func() (bool, error) {
		if _, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return false, err
		}
		_, err := client.CoreV1().ConfigMaps(ns).Get(ctx, "kube-root-ca.crt", metav1.GetOptions{})
		return err == nil, err
	})

	// Deployment → ReplicaSet → Pod.
	one := int32(1)
	labels := map[string]string{"app": "web"}
	_, err := client.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &one,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/web:1"}}},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pod corev1.Pod
	eventually(t, "a Pod from the Deployment", func() (bool, error) {
		pods, err := client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil || len(pods.Items) == 0 {
			return false, err
		}
		pod = pods.Items[0]
		return true, nil
	})

	// No scheduler: bind the Pod to a Node by hand, then play kubelet.
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-1"}}
	if _, err := client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.CoreV1().Nodes().Delete(context.Background(), "node-1", metav1.DeleteOptions{}) })
	err = client.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{
		ObjectMeta: metav1.ObjectMeta{Name: pod.Name},
		Target:     corev1.ObjectReference{Kind: "Node", Name: "node-1"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.SetPodRunning(t, ns, pod.Name, "10.244.3.9")
	_, err = client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: labels,
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "an EndpointSlice with the Pod's IP", func() (bool, error) {
		slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=web"})
		if err != nil {
			return false, err
		}
		for _, s := range slices.Items {
			for _, e := range s.Endpoints {
				if len(e.Addresses) == 1 && e.Addresses[0] == "10.244.3.9" && e.Conditions.Ready != nil && *e.Conditions.Ready {
					return true, nil
				}
			}
		}
		return false, errors.New("no ready endpoint 10.244.3.9 yet")
	})

	// The namespace controller empties and removes a deleted namespace.
	// (Not the one above: its Pod is bound to a Node, so its deletion waits
	// for a kubelet that never comes; DeleteNamespace deletes without grace.)
	gone := "short-lived"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: gone}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ConfigMaps(gone).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := client.CoreV1().Namespaces().Delete(ctx, gone, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "namespace deletion by the namespace controller", func() (bool, error) {
		_, err := client.CoreV1().Namespaces().Get(ctx, gone, metav1.GetOptions{})
		return apierrors.IsNotFound(err), err
	})
	// And DeleteNamespace copes with the controller working alongside.
	if err := c.DeleteNamespace(ctx, ns); err != nil {
		t.Fatal(err)
	}

	// Three processes now, and still nothing left after Stop.
	fp := c.footprint()
	if len(fp.Pids) != 3 {
		t.Fatalf("pids %v, want etcd, kube-apiserver, kube-controller-manager", fp.Pids)
	}
	checkRunning(t, fp)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, fp)
	checkDirRemoved(t, fp.Dir)
}
