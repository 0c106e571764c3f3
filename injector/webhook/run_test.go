package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	admissionv1 "k8s.io/api/admission/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/injector"
	"github.com/meshlet/meshlet/test/kubetest"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestRun runs meshlet-injector's Run as main does (kubeconfig, files,
// flags-shaped Config) and sends it an AdmissionReview over HTTPS.
func TestRun(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	ctx := context.Background()
	nsObj, err := c.Client().CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	nsObj.Annotations = map[string]string{injector.AnnotationInject: injector.InjectEnabled}
	if _, err := c.Client().CoreV1().Namespaces().Update(ctx, nsObj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 7)
	certFile, keyFile := writePair(t, dir, certPEM, keyPEM)
	anchors := filepath.Join(dir, "anchors.pem")
	_ = os.WriteFile(anchors, ca.certPEM, 0o600)
	meshFile := filepath.Join(dir, "injector.yaml")
	_ = os.WriteFile(meshFile, []byte("proxyImage: example.invalid/meshlet-proxy\nproxyVersion: v7\n"), 0o600)

	cfg := Config{
		ListenAddr: freeAddr(t), AdminAddr: freeAddr(t),
		CertFile: certFile, KeyFile: keyFile, CertPollInterval: 50 * time.Millisecond,
		Kubeconfig: c.Kubeconfig(), MeshConfigFile: meshFile, TrustAnchorsFile: anchors, LogLevel: "error",
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Run(runCtx, cfg) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	}()

	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get("http://" + cfg.AdminAddr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("not ready: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	defer client.CloseIdleConnections()
	resp, err := client.Post("https://"+cfg.ListenAddr+"/inject", "application/json",
		bytes.NewReader(reviewJSON(t, "admission.k8s.io/v1", ns, admissionv1.Create, podResource, pod(nil))))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out admissionv1.AdmissionReview
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || out.Response == nil {
		t.Fatalf("status %d: %v", resp.StatusCode, err)
	}
	if !bytes.Contains(out.Response.Patch, []byte(`"image":"example.invalid/meshlet-proxy:v7"`)) {
		t.Errorf("patch does not use the configured image: %s", out.Response.Patch)
	}
	if !bytes.Contains(out.Response.Patch, []byte("BEGIN CERTIFICATE")) {
		t.Errorf("patch lacks the trust anchors from the file")
	}
}

// A server that fails (here: its webhook listener is closed) makes Serve
// return the error, with its background work stopped, instead of hanging.
func TestServeReturnsWhenAServerFails(t *testing.T) {
	c := kubetest.Shared(t)
	ca := newTestCA(t)
	certPEM, keyPEM := ca.issue(t, 9)
	certFile, keyFile := writePair(t, t.TempDir(), certPEM, keyPEM)
	s, err := NewServer(ServerOptions{Mesh: testMesh(), CertFile: certFile, KeyFile: keyFile, Client: c.Client(), Registry: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	hook, _ := net.Listen("tcp", "127.0.0.1:0")
	hook.Close()
	admin, _ := net.Listen("tcp", "127.0.0.1:0")
	done := make(chan error, 1)
	go func() { done <- s.Serve(context.Background(), hook, admin) }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve returned nil after its listener failed")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve hung after its listener failed")
	}
}
