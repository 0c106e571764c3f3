package webhook

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/meshlet/meshlet/injector"
	"github.com/meshlet/meshlet/test/kubetest"
)

// startServer runs the real Server (TLS from files, namespace informer,
// admin) on loopback ports and returns the webhook and admin addresses.
func startServer(t *testing.T, client kubernetes.Interface, mesh injector.Config, certFile, keyFile string) (hookAddr, adminAddr string, reg *prometheus.Registry) {
	t.Helper()
	reg = prometheus.NewRegistry()
	s, err := NewServer(ServerOptions{
		Mesh: mesh, CertFile: certFile, KeyFile: keyFile, CertPollInterval: 50 * time.Millisecond,
		Client: client, Registry: reg,
	})
	if err != nil {
		t.Fatal(err)
	}
	hook, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	admin, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, hook, admin) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	adminAddr = admin.Addr().String()
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("injector not ready after 20s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return hook.Addr().String(), adminAddr, reg
}

func appPod(name string, ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: ann},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}},
		},
	}
}

func TestWebhookAgainstKubeAPIServer(t *testing.T) {
	c := kubetest.Shared(t)
	client := c.Client()
	ctx := context.Background()
	meshed, plain := c.Namespace(t), c.Namespace(t)
	nsObj, err := client.CoreV1().Namespaces().Get(ctx, meshed, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Annotations = map[string]string{injector.AnnotationInject: injector.InjectEnabled}
	if _, err := client.CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := client.CoreV1().ServiceAccounts(meshed).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "api"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 2)
	certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
	hookAddr, adminAddr, _ := startServer(t, client, testMesh(), certFile, keyFile)

	// The webhook as docs/injection.md describes it, except: failurePolicy
	// Fail (so a broken webhook fails the test instead of being ignored)
	// and a selector on this test's namespaces (the configuration is
	// cluster-wide and other tests share the API server).
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	ifNeeded := admissionregistrationv1.IfNeededReinvocationPolicy
	timeout := int32(10)
	url := "https://" + hookAddr + "/inject"
	cfgName := "meshlet-injector-" + meshed
	hooks := client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	_, err = hooks.Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: cfgName},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "inject.meshlet.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{URL: &url, CABundle: ca.certPEM},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule:       admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}},
			}},
			NamespaceSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{
				Key: "kubernetes.io/metadata.name", Operator: metav1.LabelSelectorOpIn, Values: []string{meshed, plain},
			}}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			ReinvocationPolicy:      &ifNeeded,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hooks.Delete(context.Background(), cfgName, metav1.DeleteOptions{}) })

	// The API server picks up webhook configurations through an informer:
	// wait until a dry-run create comes back injected.
	deadline := time.Now().Add(30 * time.Second)
	for {
		got, err := client.CoreV1().Pods(meshed).Create(ctx, appPod("probe", nil), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil && injector.Injected(&got.ObjectMeta, &got.Spec) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook not effective after 30s (last error %v)", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	t.Run("pod in annotated namespace is injected and valid", func(t *testing.T) {
		pod, err := client.CoreV1().Pods(meshed).Create(ctx, appPod("web", nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("create (API validation of the injected pod): %v", err)
		}
		if n := len(pod.Spec.InitContainers); n != 2 || pod.Spec.InitContainers[0].Name != injector.InitContainerName || pod.Spec.InitContainers[1].Name != injector.ProxyContainerName {
			t.Fatalf("init containers %v, want meshlet-init then meshlet-proxy", names(pod.Spec.InitContainers))
		}
		proxy := pod.Spec.InitContainers[1]
		if proxy.RestartPolicy == nil || *proxy.RestartPolicy != corev1.ContainerRestartPolicyAlways || proxy.StartupProbe == nil {
			t.Errorf("proxy is not a native sidecar with a startup probe: %+v", proxy)
		}
		if got, want := pod.Annotations[injector.AnnotationIdentity], "spiffe://cluster.local/ns/"+meshed+"/sa/default"; got != want {
			t.Errorf("identity annotation %q, want %q", got, want)
		}
		if pod.Annotations[injector.AnnotationProxyVersion] != "v0.1.0" {
			t.Errorf("proxy-version annotation: %v", pod.Annotations)
		}
		var token *corev1.Volume
		for i := range pod.Spec.Volumes {
			if pod.Spec.Volumes[i].Name == injector.TokenVolumeName {
				token = &pod.Spec.Volumes[i]
			}
		}
		if token == nil || token.Projected == nil {
			t.Fatalf("no projected token volume: %+v", pod.Spec.Volumes)
		}
		// The ServiceAccount admission plugin adds its own token volume;
		// ours must survive next to it.
		if a := token.Projected.Sources[0].ServiceAccountToken.Audience; a != "identity.meshlet.io" {
			t.Errorf("token audience %q", a)
		}
	})

	t.Run("pod in unannotated namespace is not injected", func(t *testing.T) {
		pod, err := client.CoreV1().Pods(plain).Create(ctx, appPod("web", nil), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if injector.Injected(&pod.ObjectMeta, &pod.Spec) || len(pod.Spec.InitContainers) != 0 {
			t.Errorf("pod in %s was injected: %v", plain, names(pod.Spec.InitContainers))
		}
	})

	t.Run("pod annotation enables injection in an unannotated namespace", func(t *testing.T) {
		pod, err := client.CoreV1().Pods(plain).Create(ctx, appPod("opt-in", map[string]string{injector.AnnotationInject: "enabled"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !injector.Injected(&pod.ObjectMeta, &pod.Spec) {
			t.Errorf("opt-in pod not injected")
		}
	})

	t.Run("pod annotation disables injection in an annotated namespace", func(t *testing.T) {
		pod, err := client.CoreV1().Pods(meshed).Create(ctx, appPod("opt-out", map[string]string{injector.AnnotationInject: "disabled"}), metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if injector.Injected(&pod.ObjectMeta, &pod.Spec) {
			t.Errorf("opt-out pod injected")
		}
	})

	t.Run("pod with init containers, volumes, annotations and overrides", func(t *testing.T) {
		p := appPod("full", map[string]string{
			"example.com/owner":                   "team-a",
			injector.AnnotationSkipOutboundPorts:  "5432",
			injector.AnnotationProxyMemoryRequest: "64Mi",
		})
		p.Spec.ServiceAccountName = "api"
		p.Spec.InitContainers = []corev1.Container{{Name: "migrate", Image: "example.invalid/migrate:1"}}
		p.Spec.Volumes = []corev1.Volume{{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "cache", MountPath: "/cache"}}
		pod, err := client.CoreV1().Pods(meshed).Create(ctx, p, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := names(pod.Spec.InitContainers); got != "meshlet-init,meshlet-proxy,migrate" {
			t.Errorf("init containers %s", got)
		}
		if pod.Annotations["example.com/owner"] != "team-a" {
			t.Errorf("existing annotation lost: %v", pod.Annotations)
		}
		if got := pod.Annotations[injector.AnnotationIdentity]; !strings.HasSuffix(got, "/sa/api") {
			t.Errorf("identity %q, want the pod's ServiceAccount", got)
		}
		if !strings.Contains(strings.Join(pod.Spec.InitContainers[0].Args, " "), "--skip-outbound-ports=5432") {
			t.Errorf("skip ports not passed: %v", pod.Spec.InitContainers[0].Args)
		}
	})

	t.Run("invalid override is refused with a clear message", func(t *testing.T) {
		_, err := client.CoreV1().Pods(meshed).Create(ctx, appPod("bad", map[string]string{injector.AnnotationSkipInboundPorts: "22,ssh"}), metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), injector.AnnotationSkipInboundPorts) || !strings.Contains(err.Error(), `"ssh" is not a port`) {
			t.Errorf("create with a bad annotation: %v", err)
		}
	})

	t.Run("fallback container mode passes API validation", func(t *testing.T) {
		// What meshctl inject --manual writes is created as is.
		for _, mode := range []injector.SidecarMode{injector.SidecarContainer, injector.SidecarNative} {
			p := appPod("manual-"+string(mode), nil)
			p.Spec.InitContainers = []corev1.Container{{Name: "setup", Image: "example.invalid/setup:1"}}
			mesh := testMesh()
			mesh.Sidecar = mode
			if err := injector.InjectPodSpec(&p.ObjectMeta, &p.Spec, plain, mesh); err != nil {
				t.Fatal(err)
			}
			if _, err := client.CoreV1().Pods(plain).Create(ctx, p, metav1.CreateOptions{}); err != nil {
				t.Errorf("%s: the API server refused the injected pod: %v", mode, err)
			}
		}
	})

	t.Run("metrics count the decisions", func(t *testing.T) {
		resp, err := http.Get("http://" + adminAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, want := range []string{
			`meshlet_injector_pods_injected_total{reason="namespace-enabled"}`,
			`meshlet_injector_pods_injected_total{reason="pod-enabled"}`,
			`meshlet_injector_pods_skipped_total{reason="not-enabled"}`,
			`meshlet_injector_pods_skipped_total{reason="pod-disabled"}`,
			`meshlet_injector_errors_total{reason="invalid-annotation"} 1`,
		} {
			if !strings.Contains(string(body), want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

func names(cs []corev1.Container) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, ",")
}

var _ = fmt.Sprint
