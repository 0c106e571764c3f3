package meshctl

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/test/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// apply sends every document of manifests to the API server with
// server-side apply, as `kubectl apply --server-side` would. Namespaced
// objects without a namespace go to ns.
func apply(t *testing.T, cfg *rest.Config, ns, manifests string) int {
	t.Helper()
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dec := yaml.NewDecoder(strings.NewReader(manifests))
	n := 0
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if doc == nil {
			continue
		}
		u := &unstructured.Unstructured{Object: doc}
		if u.GetKind() == "List" {
			items, _ := doc["items"].([]any)
			for _, it := range items {
				b, err := yaml.Marshal(it)
				if err != nil {
					t.Fatal(err)
				}
				n += apply(t, cfg, ns, string(b))
			}
			continue
		}
		gvk := u.GroupVersionKind()
		m, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("%s: %v", gvk, err)
		}
		ri := dyn.Resource(m.Resource)
		var r dynamic.ResourceInterface = ri
		if m.Scope.Name() == "namespace" {
			if u.GetNamespace() == "" {
				u.SetNamespace(ns)
			}
			r = ri.Namespace(u.GetNamespace())
		}
		if _, err := r.Apply(context.Background(), u.GetName(), u, metav1.ApplyOptions{FieldManager: "meshctl-test", Force: true}); err != nil {
			t.Fatalf("the API server refused %s %s: %v", gvk.Kind, u.GetName(), err)
		}
		n++
	}
}

var installOnce struct {
	sync.Mutex
	done bool
}

// installed returns the shared cluster with `meshctl install` (the fixed
// PKI) applied in namespace meshlet, once per package.
func installed(t *testing.T) *kubetest.Cluster {
	t.Helper()
	c := kubetest.Shared(t)
	installOnce.Lock()
	defer installOnce.Unlock()
	if !installOnce.done {
		r := meshctl(t, "", "install "+pkiFlags)
		if r.code != 0 {
			t.Fatalf("install: %s", r.stderr)
		}
		if n := apply(t, c.Config(), "", r.stdout); n != 20 {
			t.Fatalf("applied %d objects, want 20", n)
		}
		installOnce.done = true
	}
	return c
}

func TestInstallAcceptedByAPIServer(t *testing.T) {
	c := installed(t)
	ctx := context.Background()
	for _, comp := range deploy.Components {
		d, err := c.Client().AppsV1().Deployments("meshlet").Get(ctx, "meshlet-"+comp, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("deployment %s: %v", comp, err)
		}
		// No controller makes the Pods here, so make one from the template:
		// the namespace enforces the "restricted" Pod Security Standard,
		// and the API server's PodSecurity admission must let it in.
		pod := &corev1.Pod{ObjectMeta: d.Spec.Template.ObjectMeta, Spec: d.Spec.Template.Spec}
		pod.GenerateName = d.Name + "-"
		if _, err := c.Client().CoreV1().Pods("meshlet").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Errorf("a %s pod is refused in its namespace: %v", comp, err)
		}
	}
	// The check above can fail: a pod without the security context is refused.
	plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{GenerateName: "plain-"},
		Spec: corev1.PodSpec{ServiceAccountName: "meshlet-identity", Containers: []corev1.Container{{Name: "a", Image: "b"}}}}
	if _, err := c.Client().CoreV1().Pods("meshlet").Create(ctx, plain, metav1.CreateOptions{}); err == nil ||
		!strings.Contains(err.Error(), "restricted") {
		t.Errorf("a pod violating the restricted standard was not refused: %v", err)
	}
	// HA manifests too (PodDisruptionBudgets, affinity), in another
	// namespace with its own webhook certificate.
	r := meshctl(t, "", "install --ha --namespace meshlet-ha")
	if r.code != 0 {
		t.Fatalf("install --ha: %s", r.stderr)
	}
	ha := strings.ReplaceAll(r.stdout, "name: meshlet-proxy-injector\n", "name: meshlet-ha-proxy-injector\n")
	if n := apply(t, c.Config(), "", ha); n != 23 {
		t.Errorf("applied %d HA objects, want 23", n)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		_ = c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "meshlet-ha-proxy-injector", metav1.DeleteOptions{})
		for _, comp := range deploy.Components {
			_ = c.Client().RbacV1().ClusterRoleBindings().Delete(ctx, "meshlet-meshlet-ha-"+comp, metav1.DeleteOptions{})
			_ = c.Client().RbacV1().ClusterRoles().Delete(ctx, "meshlet-meshlet-ha-"+comp, metav1.DeleteOptions{})
		}
		if err := c.DeleteNamespace(ctx, "meshlet-ha"); err != nil {
			t.Error(err)
		}
	})
}

// optedOut returns a fresh namespace the injector webhook is never called
// for, so pods are created at once even though no injector runs.
func optedOut(t *testing.T, c *kubetest.Cluster) string {
	t.Helper()
	ns := c.Namespace(t)
	patch := `{"metadata":{"labels":{"meshlet.io/admission-webhooks":"disabled"}}}`
	if _, err := c.Client().CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestInjectOutputAcceptedByAPIServer(t *testing.T) {
	c := installed(t)
	kubeconfig := "--kubeconfig=" + c.Kubeconfig()
	for _, mode := range []string{"", "--manual"} {
		ns := optedOut(t, c)
		for _, in := range injectInputs {
			// --manual reads the mesh config from the cluster this time.
			r := meshctl(t, "", strings.Fields("inject "+mode+" "+kubeconfig+" testdata/inject/"+in)...)
			if r.code != 0 {
				t.Fatalf("inject %s %s: %s", mode, in, r.stderr)
			}
			apply(t, c.Config(), ns, r.stdout)
		}
		pod, err := c.Client().CoreV1().Pods(ns).Get(context.Background(), "debug", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if mode == "" && pod.Annotations["meshlet.io/inject"] != "enabled" {
			t.Errorf("annotated pod lacks the annotation: %v", pod.Annotations)
		}
		if mode == "--manual" && (len(pod.Spec.InitContainers) != 2 || pod.Spec.InitContainers[1].Name != "meshlet-proxy") {
			t.Errorf("manually injected pod has init containers %v", pod.Spec.InitContainers)
		}
	}
}

// writeKubeconfig turns a client config into a kubeconfig file.
func writeKubeconfig(t *testing.T, cfg *rest.Config) string {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData, CertificateAuthority: cfg.CAFile}
	kc.AuthInfos["u"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData,
		ClientCertificate: cfg.CertFile, ClientKey: cfg.KeyFile, Token: cfg.BearerToken}
	kc.Contexts["ctx"] = &clientcmdapi.Context{Cluster: "c", AuthInfo: "u"}
	kc.CurrentContext = "ctx"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckAgainstAPIServer(t *testing.T) {
	c := installed(t)
	kc := "--kubeconfig=" + c.Kubeconfig()

	r := meshctl(t, "", "check", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "Status check results are √") || strings.Contains(r.stdout, "×") {
		t.Fatalf("check on a fresh install: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	for _, line := range []string{
		"√ Deployment meshlet-identity is available (present; the cluster has no nodes, availability not checked)",
		"√ trust anchors are valid for at least 60 days",
		"√ issuer certificate chains to the trust anchors",
		"√ webhook caBundle is valid for the injector's serving certificate",
	} {
		if !strings.Contains(r.stdout, line+"\n") {
			t.Errorf("check output lacks %q:\n%s", line, r.stdout)
		}
	}

	// docs/cli.md shows this very output (the API server's port aside).
	doc, err := os.ReadFile("../../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	shown := regexp.MustCompile("(?s)```text\n(kubernetes-api\n.*?)```").FindSubmatch(doc)
	if shown == nil {
		t.Fatal("docs/cli.md has no check output block")
	}
	port := regexp.MustCompile(`https://127\.0\.0\.1:\d+`)
	if got, want := port.ReplaceAllString(r.stdout, "URL"), port.ReplaceAllString(string(shown[1]), "URL"); got != want {
		t.Errorf("docs/cli.md shows another check output:\n%s", diff(want, got))
	}

	// A trust anchor that ends within the window fails the check (the
	// test anchor is valid for 100 years; ask for 114).
	r = meshctl(t, "", "check", kc, "--min-validity=1000000h")
	if r.code == 0 || !strings.Contains(r.stdout, "× trust anchors are valid for at least 41666 days") {
		t.Errorf("short-lived anchor passed:\n%s", r.stdout)
	}

	// The control plane's version comes from the mesh config.
	r = meshctl(t, "", "version", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "Control plane version: dev\n") {
		t.Errorf("version: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	// Without the webhook configuration: a clear × line and exit 1.
	ctx := context.Background()
	wh := c.Client().AdmissionregistrationV1().MutatingWebhookConfigurations()
	saved, err := wh.Get(ctx, deploy.WebhookConfigName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Delete(ctx, deploy.WebhookConfigName, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		saved.ResourceVersion, saved.UID = "", ""
		if _, err := wh.Create(context.Background(), saved, metav1.CreateOptions{}); err != nil {
			t.Error(err)
		}
	})
	r = meshctl(t, "", "check", kc)
	if r.code != 1 || !strings.Contains(r.stdout, "× MutatingWebhookConfiguration meshlet-proxy-injector exists\n") ||
		!strings.Contains(r.stdout, "Status check results are × (1 failed)") {
		t.Errorf("check without webhook: exit %d\n%s", r.code, r.stdout)
	}
}

func TestCheckPreAgainstAPIServer(t *testing.T) {
	c := kubetest.Shared(t)
	kc := "--kubeconfig=" + c.Kubeconfig()
	r := meshctl(t, "", "check", "--pre", "--namespace=not-yet-installed", kc)
	if r.code != 0 || !strings.Contains(r.stdout, "√ can create mutatingwebhookconfigurations.admissionregistration.k8s.io\n") {
		t.Errorf("check --pre as admin: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if !strings.Contains(r.stdout, "√ can query the Kubernetes API (v1.") {
		t.Errorf("no server version:\n%s", r.stdout)
	}
	// A user without rights: every permission fails, by name.
	user := writeKubeconfig(t, c.UserConfig(t, "nobody"))
	r = meshctl(t, "", "check", "--pre", "--namespace=not-yet-installed", "--kubeconfig="+user)
	if r.code != 1 || !strings.Contains(r.stdout, "× can create clusterroles.rbac.authorization.k8s.io\n    cannot create clusterroles.rbac.authorization.k8s.io") {
		t.Errorf("check --pre as nobody: exit %d\n%s", r.code, r.stdout)
	}
	// No API server at all.
	dead := &rest.Config{Host: "https://127.0.0.1:1", TLSClientConfig: rest.TLSClientConfig{Insecure: true}, Timeout: 2 * time.Second}
	r = meshctl(t, "", "check", "--kubeconfig="+writeKubeconfig(t, dead))
	if r.code != 1 || !strings.Contains(r.stdout, "× can query the Kubernetes API") {
		t.Errorf("check without API server: exit %d\n%s", r.code, r.stdout)
	}
	// --context picks a context other than the current one.
	kc2, err := clientcmd.LoadFromFile(writeKubeconfig(t, dead))
	if err != nil {
		t.Fatal(err)
	}
	live, err := clientcmd.LoadFromFile(c.Kubeconfig())
	if err != nil {
		t.Fatal(err)
	}
	liveCtx := live.Contexts[live.CurrentContext]
	kc2.Clusters["live"] = live.Clusters[liveCtx.Cluster]
	kc2.AuthInfos["live"] = live.AuthInfos[liveCtx.AuthInfo]
	kc2.Contexts["live"] = &clientcmdapi.Context{Cluster: "live", AuthInfo: "live"}
	two := filepath.Join(t.TempDir(), "two")
	if err := clientcmd.WriteToFile(*kc2, two); err != nil {
		t.Fatal(err)
	}
	r = meshctl(t, "", "check", "--pre", "--namespace=not-yet-installed", "--kubeconfig="+two, "--context=live")
	if r.code != 0 {
		t.Errorf("--context live: exit %d\n%s", r.code, r.stdout)
	}
	// And $KUBECONFIG is honoured without --kubeconfig.
	t.Setenv("KUBECONFIG", two)
	r = meshctl(t, "", "check", "--pre", "--context=live", "--namespace=not-yet-installed")
	if r.code != 0 {
		t.Errorf("$KUBECONFIG: exit %d\n%s", r.code, r.stdout)
	}
}
