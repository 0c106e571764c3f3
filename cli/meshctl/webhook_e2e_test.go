package meshctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/injector/webhook"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// loopbackServingPKI writes a CA and a serving certificate for 127.0.0.1
// (the API server dials the test's injector by URL, not by Service).
func loopbackServingPKI(t *testing.T, dir string) (caPEM []byte, certFile, keyFile string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, leaf, caTmpl, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, []byte(encodeCert(der)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, []byte(keyPEM), 0o600); err != nil {
		t.Fatal(err)
	}
	return []byte(encodeCert(caDER)), certFile, keyFile
}

// TestInstalledWebhookInjects: the MutatingWebhookConfiguration meshctl
// install wrote (rules, selectors, failure policy, review versions) with a
// real meshlet-injector behind it, configured from the installed mesh
// config: a Pod created in an annotated namespace comes back with the
// proxy, one in a namespace without the annotation does not. Only the
// client config is pointed at the test's loopback injector.
func TestInstalledWebhookInjects(t *testing.T) {
	c := installed(t)
	ctx := context.Background()
	dir := t.TempDir()

	// The injector's files, as its Deployment mounts them.
	data, err := meshConfigFromFile("testdata/golden/install.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	caPEM, certFile, keyFile := loopbackServingPKI(t, dir)
	port, admin := freePort(t), freePort(t)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		done <- webhook.Run(runCtx, webhook.Config{
			ListenAddr: "127.0.0.1:" + strconv.Itoa(port), AdminAddr: "127.0.0.1:" + strconv.Itoa(admin),
			CertFile: certFile, KeyFile: keyFile, Kubeconfig: c.Kubeconfig(),
			MeshConfigFile: filepath.Join(dir, "injector.yaml"), TrustAnchorsFile: filepath.Join(dir, "trustAnchorsPEM"),
		})
	}()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("injector: %v", err)
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(admin) + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("injector not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// Point the installed webhook at it; keep everything else as installed.
	whs := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations()
	wc, err := whs.Get(ctx, deploy.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	saved := wc.DeepCopy()
	url := "https://127.0.0.1:" + strconv.Itoa(port) + "/inject"
	wc.Webhooks[0].ClientConfig = admissionv1.WebhookClientConfig{URL: &url, CABundle: caPEM}
	if _, err := whs.Update(ctx, wc, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur, err := whs.Get(context.Background(), deploy.WebhookConfigName, metav1.GetOptions{})
		if err != nil {
			t.Error(err)
			return
		}
		saved.ResourceVersion = cur.ResourceVersion
		if _, err := whs.Update(context.Background(), saved, metav1.UpdateOptions{}); err != nil {
			t.Error(err)
		}
	})

	meshed, plain := c.Namespace(t), c.Namespace(t)
	patch := []byte(`{"metadata":{"annotations":{"meshlet.io/inject":"enabled"}}}`)
	if _, err := c.Client().CoreV1().Namespaces().Patch(ctx, meshed, "application/merge-patch+json", patch, metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	// The injector learns namespaces from an informer: retry until it has
	// seen the annotation (bounded).
	var got *corev1.Pod
	for i := 0; ; i++ {
		pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app-" + strconv.Itoa(i)},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
		got, err = c.Client().CoreV1().Pods(meshed).Create(ctx, pod, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Spec.InitContainers) > 0 || i == 50 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got.Spec.InitContainers) != 2 || got.Spec.InitContainers[1].Name != "meshlet-proxy" ||
		got.Annotations["meshlet.io/proxy-version"] != "v0.0.0-test" ||
		got.Annotations["meshlet.io/identity"] != "spiffe://cluster.local/ns/"+meshed+"/sa/default" {
		t.Errorf("pod in an annotated namespace: init containers %d, annotations %v", len(got.Spec.InitContainers), got.Annotations)
	}
	if img := got.Spec.InitContainers[1].Image; img != "ghcr.io/meshlet/meshlet-proxy:v0.0.0-test" {
		t.Errorf("proxy image %s", img)
	}

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "app"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app:1"}}}}
	got, err = c.Client().CoreV1().Pods(plain).Create(ctx, pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Spec.InitContainers) != 0 || len(got.Spec.Containers) != 1 {
		t.Errorf("pod in a plain namespace was changed: %+v", got.Spec)
	}
}
