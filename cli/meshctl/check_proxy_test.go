package meshctl

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"math/big"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/internal/pemutil"
)

// proxyServer stands in for a meshed pod's proxy: a TLS listener on ip:port
// that presents a certificate for id, signed by the given CA, and asks for
// a client certificate as the real inbound listener does.
func proxyServer(t *testing.T, ip string, port int, id string, caCert *x509.Certificate, caKey any) int {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		NotBefore:    time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		URIs:        []*url.URL{u},
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, key.Public(), caKey)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der, caCert.Raw}, PrivateKey: key}},
		ClientAuth:   tls.RequireAnyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	l, err := tls.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return l.Addr().(*net.TCPAddr).Port
}

func loadCA(t *testing.T, certFile, keyFile string) (*x509.Certificate, any) {
	t.Helper()
	cb, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	certs, err := pemutil.Certificates(cb)
	if err != nil {
		t.Fatal(err)
	}
	key, err := pemutil.PrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	return certs[0], key
}

func TestCheckProxyCertificates(t *testing.T) {
	c := installed(t)
	ns := optedOut(t, c)
	id := "spiffe://cluster.local/ns/" + ns + "/sa/default"
	issuer, issuerKey := loadCA(t, "testdata/pki/issuer.crt", "testdata/pki/issuer.key")
	otherCA, otherKey := selfSignedCA(t)

	port := proxyServer(t, "127.0.0.1", 0, id, issuer, issuerKey)
	proxyServer(t, "127.0.0.2", port, id, otherCA, otherKey)
	proxyServer(t, "127.0.0.3", port, "spiffe://cluster.local/ns/"+ns+"/sa/other", issuer, issuerKey)

	pods := []struct{ name, ip string }{{"good", "127.0.0.1"}, {"foreign-ca", "127.0.0.2"}, {"wrong-id", "127.0.0.3"}, {"pending", ""}}
	for _, p := range pods {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: p.name, Namespace: ns, Annotations: map[string]string{
				"meshlet.io/proxy-version": "v0.9", "meshlet.io/identity": id,
			}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}},
		}
		if _, err := c.Client().CoreV1().Pods(ns).Create(context.Background(), pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		if p.ip != "" {
			c.SetPodRunning(t, ns, p.name, p.ip)
		}
	}
	r := meshctl(t, "", "check", "--kubeconfig="+c.Kubeconfig(), "--proxy", "--proxy-namespace="+ns, "--proxy-port="+strconv.Itoa(port))
	if r.code != 1 {
		t.Errorf("exit %d, want 1 (two bad proxies)", r.code)
	}
	for _, want := range []string{
		"√ can list meshed pods (4 meshed)\n",
		"‼ meshed pods run the control plane's proxy version\n    4 pod(s) run another proxy version than dev; restart them to upgrade: ",
		"√ pod " + ns + "/good proxy certificate chains to the trust anchors (" + id + ")\n",
		"× pod " + ns + "/foreign-ca proxy certificate chains to the trust anchors\n    x509: certificate signed by unknown authority",
		"× pod " + ns + "/wrong-id proxy certificate chains to the trust anchors\n    certificate does not name the pod's identity " + id + "\n",
		"‼ pod " + ns + "/pending proxy certificate chains to the trust anchors\n    not running, not checked\n",
		"Status check results are × (2 failed)",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, r.stdout)
		}
	}
}

func selfSignedCA(t *testing.T) (*x509.Certificate, any) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}
