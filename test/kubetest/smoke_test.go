package kubetest

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

func TestVersionAndKubeconfig(t *testing.T) {
	c := Shared(t)
	v, err := c.Client().Discovery().ServerVersion()
	if err != nil {
		t.Fatal(err)
	}
	if v.GitVersion != "v1.37.2" || v.Major != "1" || v.Minor != "37" {
		t.Fatalf("server version %+v, want v1.37.2 (build.sh sets it with -ldflags)", v)
	}
	// The kubeconfig file is what binaries started by a test get.
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != c.URL() {
		t.Fatalf("kubeconfig server %q, want %q", cfg.Host, c.URL())
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Namespaces().Get(context.Background(), "kube-system", metav1.GetOptions{}); err != nil {
		t.Fatalf("kubeconfig client: %v", err)
	}
	key, err := os.ReadFile(c.ServiceAccountKeyFile())
	if err != nil || !strings.Contains(string(key), "BEGIN PRIVATE KEY") {
		t.Fatalf("ServiceAccountKeyFile %s: %v", c.ServiceAccountKeyFile(), err)
	}
	ca, err := os.ReadFile(c.CAFile())
	if err != nil || !strings.Contains(string(ca), "BEGIN CERTIFICATE") {
		t.Fatalf("CAFile %s: %v %q", c.CAFile(), err, ca)
	}
}

func TestServiceAndEndpointSlice(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	client := c.Client()

	svc, err := client.CoreV1().Services(ns).Create(ctx, &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "web"},
		Spec: corev1.ServiceSpec{
			Selector: map[string]string{"app": "web"},
			Ports:    []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if svc.Spec.ClusterIP == "" || !strings.HasPrefix(svc.Spec.ClusterIP, "10.") {
		t.Fatalf("ClusterIP %q, want one from %s", svc.Spec.ClusterIP, ServiceCIDR)
	}

	ready := true
	port, proto, name := int32(8080), corev1.ProtocolTCP, "http"
	_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta: metav1.ObjectMeta{
			Name:   "web-1",
			Labels: map[string]string{discoveryv1.LabelServiceName: "web"},
		},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints: []discoveryv1.Endpoint{
			{Addresses: []string{"10.244.0.11"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
			{Addresses: []string{"10.244.0.12"}, Conditions: discoveryv1.EndpointConditions{Ready: &ready}},
		},
		Ports: []discoveryv1.EndpointPort{{Name: &name, Port: &port, Protocol: &proto}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	slices, err := client.DiscoveryV1().EndpointSlices(ns).List(ctx, metav1.ListOptions{
		LabelSelector: discoveryv1.LabelServiceName + "=web",
	})
	if err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			addrs = append(addrs, e.Addresses...)
		}
	}
	if strings.Join(addrs, ",") != "10.244.0.11,10.244.0.12" {
		t.Fatalf("endpoint addresses %v", addrs)
	}

	// The fact the harness documents: loopback endpoints are rejected.
	_, err = client.DiscoveryV1().EndpointSlices(ns).Create(ctx, &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Name: "web-loopback"},
		AddressType: discoveryv1.AddressTypeIPv4,
		Endpoints:   []discoveryv1.Endpoint{{Addresses: []string{"127.0.0.1"}}},
	}, metav1.CreateOptions{})
	if !apierrors.IsInvalid(err) {
		t.Fatalf("EndpointSlice with 127.0.0.1: %v, want Invalid", err)
	}
}

func TestTokenRequestAndReview(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	sa := c.ServiceAccount(t, ns, "app")
	const audience = "identity.meshlet.io"
	token := c.Token(t, ns, sa, audience, 10*time.Minute)
	other := c.Token(t, ns, "default", "", time.Hour)

	tests := []struct {
		name      string
		token     string
		audiences []string
		wantAuth  bool
		wantUser  string
	}{
		{"right audience", token, []string{audience}, true, "system:serviceaccount:" + ns + ":app"},
		{"wrong audience", token, []string{"someone-else"}, false, ""},
		{"issuer audience by default", other, nil, true, "system:serviceaccount:" + ns + ":default"},
		{"tampered", token[:len(token)-4] + "AAAA", []string{audience}, false, ""},
		{"not a token", "hello", []string{audience}, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			review, err := c.Client().AuthenticationV1().TokenReviews().Create(context.Background(),
				&authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: tt.token, Audiences: tt.audiences}},
				metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st := review.Status
			if st.Authenticated != tt.wantAuth || st.User.Username != tt.wantUser {
				t.Fatalf("review: authenticated=%v user=%q error=%q; want %v %q",
					st.Authenticated, st.User.Username, st.Error, tt.wantAuth, tt.wantUser)
			}
			if tt.wantAuth && tt.audiences != nil && (len(st.Audiences) != 1 || st.Audiences[0] != tt.audiences[0]) {
				t.Fatalf("review audiences %v, want %v", st.Audiences, tt.audiences)
			}
		})
	}
}

// A ServiceAccount gets what RBAC grants it and nothing more: what tests of
// a component's ClusterRole rely on.
func TestServiceAccountConfigIsSubjectToRBAC(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	sa := c.ServiceAccount(t, ns, "reader")
	client, err := kubernetes.NewForConfig(c.ServiceAccountConfig(t, ns, sa))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("list services without a role: %v, want Forbidden", err)
	}
	_, err = c.Client().RbacV1().Roles(ns).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"list"}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Client().RbacV1().RoleBindings(ns).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "svc-reader"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "svc-reader"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: sa, Namespace: ns}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// RBAC changes reach the authorizer through an informer: not instant.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := client.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err == nil {
			break
		}
		if !apierrors.IsForbidden(err) || time.Now().After(deadline) {
			t.Fatalf("list services with a role: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	user, err := kubernetes.NewForConfig(c.UserConfig(t, "jane", "devs"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := user.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{}); !apierrors.IsForbidden(err) {
		t.Fatalf("user jane lists secrets: %v, want Forbidden", err)
	}
}

// Namespace's cleanup really deletes the namespace and what is in it,
// Pods included, though no namespace controller or kubelet runs.
func TestNamespaceCleanupDeletesEverything(t *testing.T) {
	c := Shared(t)
	ctx := context.Background()
	var ns string
	t.Run("inner", func(t *testing.T) {
		ns = c.Namespace(t)
		for _, sa := range []string{"default"} {
			if _, err := c.Client().CoreV1().ServiceAccounts(ns).Get(ctx, sa, metav1.GetOptions{}); err != nil {
				t.Fatalf("ServiceAccount %s: %v", sa, err)
			}
		}
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: corev1.PodSpec{
				NodeName:   "node-that-does-not-exist", // a bound Pod needs a kubelet to end gracefully
				Containers: []corev1.Container{{Name: "c", Image: "example.invalid/app:1"}},
			},
		}
		if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "cm"}}
		if _, err := c.Client().CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	if _, err := c.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Fatalf("namespace %s after cleanup: %v, want NotFound", ns, err)
	}
	pods, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil || len(pods.Items) != 0 {
		t.Fatalf("pods left in %s: %v %v", ns, err, pods)
	}
}

func TestSetPodRunning(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web-0", Labels: map[string]string{"app": "web"}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "app", Image: "example.invalid/app:1"},
			{Name: "sidecar", Image: "example.invalid/sidecar:1"},
		}},
	}
	if _, err := c.Client().CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.SetPodRunning(t, ns, "web-0", "10.244.1.7")
	// Read back what the apiserver stored, and find the Pod by IP the way a
	// destination service's field selector would.
	got, err := c.Client().CoreV1().Pods(ns).List(ctx, metav1.ListOptions{FieldSelector: "status.podIP=10.244.1.7"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Items) != 1 {
		t.Fatalf("pods with IP 10.244.1.7: %d, want 1", len(got.Items))
	}
	p := got.Items[0]
	ready := false
	for _, cond := range p.Status.Conditions {
		if cond.Type == corev1.PodReady && cond.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	if p.Status.Phase != corev1.PodRunning || !ready || len(p.Status.ContainerStatuses) != 2 {
		t.Fatalf("status: phase %s ready %v containers %d", p.Status.Phase, ready, len(p.Status.ContainerStatuses))
	}
}

// A test can have a cluster of its own; it is gone when the test ends.
func TestStartOwnCluster(t *testing.T) {
	binariesOrSkip(t)
	var fp footprint
	t.Run("own", func(t *testing.T) {
		c := Start(t)
		if c == Shared(t) {
			t.Fatal("Start returned the shared cluster")
		}
		fp = c.footprint()
		ns := c.Namespace(t)
		if _, err := c.Client().CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	checkGone(t, fp)
	checkDirRemoved(t, fp.Dir)
}
