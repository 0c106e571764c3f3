package identity

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	caid "github.com/meshlet/meshlet/identity"
	"github.com/meshlet/meshlet/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// TestProxiesInKubernetesMode: two proxies present real ServiceAccount
// tokens (TokenRequest, audience identity.meshlet.io) to meshlet-identity in
// Kubernetes mode, get certificates, and talk over mTLS. Then one
// ServiceAccount is deleted: its proxy can no longer renew.
func TestProxiesInKubernetesMode(t *testing.T) {
	c := kubetest.Shared(t)
	ns := c.Namespace(t)
	c.ServiceAccount(t, ns, "web")
	c.ServiceAccount(t, ns, "db")
	root, err := caid.NewRootCA("cluster.local", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	s := startIdentityMode(t, root, 5*time.Second, func(cfg *caid.Config) {
		cfg.TrustDomain = "cluster.local"
		cfg.Mode = caid.ModeKubernetes
		cfg.KubeClient = c.Client()
	})
	proxyFor := func(sa string) *proxy {
		tokFile := filepath.Join(t.TempDir(), "identity-token")
		writeFile(t, tokFile, []byte(c.Token(t, ns, sa, caid.DefaultAudience, time.Hour)))
		id := "spiffe://cluster.local/ns/" + ns + "/sa/" + sa
		return startClient(t, s, id, func(cfg *Config) { cfg.TokenFile = tokFile })
	}
	web, db := proxyFor("web"), proxyFor("db")
	waitReady(t, web)
	waitReady(t, db)
	body, _, err := get(mtlsClient(web, db.ID().String()), mtlsServer(t, db))
	if err != nil {
		t.Fatal(err)
	}
	if body != web.ID().String() {
		t.Fatalf("db saw %q, want %s", body, web.ID())
	}

	if err := c.Client().CoreV1().ServiceAccounts(ns).Delete(context.Background(), "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	fails := web.metrics.failures.WithLabelValues("unauthenticated")
	deadline := time.Now().Add(15 * time.Second)
	for value(t, fails) < 1 {
		if time.Now().After(deadline) {
			t.Fatal("web still renews after its ServiceAccount was deleted")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
