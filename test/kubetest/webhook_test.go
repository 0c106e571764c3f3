package kubetest

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// webhookServer serves a mutating webhook on loopback over TLS with a
// certificate from its own CA, and counts the Pod reviews it answers.
func webhookServer(t *testing.T, handler http.HandlerFunc) (url string, caPEM []byte) {
	t.Helper()
	ca, err := newAuthority("webhook-ca")
	if err != nil {
		t.Fatal(err)
	}
	l, err := ca.issue(leafSpec{commonName: "webhook", ips: []net.IP{net.IPv4(127, 0, 0, 1)}, server: true})
	if err != nil {
		t.Fatal(err)
	}
	cert, err := tls.X509KeyPair(l.certPEM, l.keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(handler)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL, ca.certPEM
}

const webhookAnnotation = "kubetest.meshlet.io/mutated"

func TestMutatingWebhookIsCalledOnPodCreate(t *testing.T) {
	c := Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()

	var calls atomic.Int32
	var badRequests atomic.Int32
	url, caPEM := webhookServer(t, func(w http.ResponseWriter, r *http.Request) {
		var review admissionv1.AdmissionReview
		if err := json.NewDecoder(r.Body).Decode(&review); err != nil || review.Request == nil {
			badRequests.Add(1)
			http.Error(w, "bad review", http.StatusBadRequest)
			return
		}
		req := review.Request
		if req.Kind.Kind != "Pod" || req.Operation != admissionv1.Create || req.Namespace != ns {
			badRequests.Add(1)
		}
		calls.Add(1)
		var pod corev1.Pod
		if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
			badRequests.Add(1)
		}
		// "add" on /metadata/annotations replaces the map; fine here since
		// the test's Pods have none.
		patch, _ := json.Marshal([]map[string]any{{
			"op": "add", "path": "/metadata/annotations",
			"value": map[string]string{webhookAnnotation: "by-" + pod.Name},
		}})
		pt := admissionv1.PatchTypeJSONPatch
		review.Response = &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true, Patch: patch, PatchType: &pt}
		review.Request = nil
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(review)
	})

	path := "/mutate"
	fail := admissionregistrationv1.Fail
	none := admissionregistrationv1.SideEffectClassNone
	timeout := int32(5)
	hook := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: ns},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "mutate.kubetest.meshlet.io",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{
				URL:      ptr(url + path),
				CABundle: caPEM,
			},
			Rules: []admissionregistrationv1.RuleWithOperations{{
				Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{
					APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"},
				},
			}},
			// Cluster-wide config, so only this test's namespace.
			NamespaceSelector:       &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			FailurePolicy:           &fail,
			SideEffects:             &none,
			TimeoutSeconds:          &timeout,
			AdmissionReviewVersions: []string{"v1"},
		}},
	}
	hooks := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations()
	if _, err := hooks.Create(ctx, hook, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hooks.Delete(context.Background(), hook.Name, metav1.DeleteOptions{}) })

	pod := func(name string) *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "example.invalid/app:1"}}},
		}
	}
	// The apiserver learns of a new webhook configuration through an
	// informer; dry-run creates (a side-effect-free webhook sees them) tell
	// when it has.
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, err := c.Client().CoreV1().Pods(ns).Create(ctx, pod("probe"), metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err != nil {
			t.Fatalf("dry-run create: %v", err)
		}
		if got.Annotations[webhookAnnotation] != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the webhook was not called within 20s (%d calls)", calls.Load())
		}
		time.Sleep(50 * time.Millisecond)
	}

	before := calls.Load()
	created, err := c.Client().CoreV1().Pods(ns).Create(ctx, pod("app"), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := created.Annotations[webhookAnnotation]; got != "by-app" {
		t.Fatalf("created Pod annotation %q = %q, want by-app", webhookAnnotation, got)
	}
	stored, err := c.Client().CoreV1().Pods(ns).Get(ctx, "app", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := stored.Annotations[webhookAnnotation]; got != "by-app" {
		t.Fatalf("stored Pod annotation %q = %q, want by-app", webhookAnnotation, got)
	}
	if n := calls.Load() - before; n != 1 {
		t.Fatalf("webhook calls for one create: %d, want 1", n)
	}
	if n := badRequests.Load(); n != 0 {
		t.Fatalf("%d unexpected admission requests", n)
	}
	// A Pod in another namespace does not reach the webhook.
	other := c.Namespace(t)
	before = calls.Load()
	if _, err := c.Client().CoreV1().Pods(other).Create(ctx, pod("elsewhere"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := calls.Load() - before; n != 0 {
		t.Fatalf("webhook called %d times for another namespace", n)
	}
}

func ptr[T any](v T) *T { return &v }
