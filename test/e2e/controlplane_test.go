//go:build linux

package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/meshlet/meshlet/cli/meshctl"
	"github.com/meshlet/meshlet/test/kubetest"
)

const (
	cpNamespace   = "meshlet"
	trustDomain   = "cluster.local"
	proxyUID      = 2102
	tokenAudience = "identity.meshlet.io"
)

// mesh is one run's world: the API server, the control plane as local
// processes, the node namespace with its relays, and every pod.
type mesh struct {
	kube   *kubetest.Cluster
	client kubernetes.Interface
	bin    string // component binaries
	dir    string // files the "kubelet" would mount (0755: the proxy's UID reads tokens here)
	net    *network
	procs  *procs

	certLifetime time.Duration
	hosts        string // /etc/hosts lines of every pod: the control plane's Service names

	mu    sync.Mutex
	cp    map[string]*component // "destination", "identity", "injector"
	pods  []*pod
	relay []*relay
}

// component is one control-plane process and how to start it again.
type component struct {
	name      string
	argv      []string
	addr      string // its gRPC or webhook address on loopback
	adminAddr string
	proc      *proc
}

func newMesh(t *testing.T, certLifetime time.Duration) *mesh {
	requireHost(t)
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	prefix := "e2e" + hex.EncodeToString(rnd[:])
	m := &mesh{certLifetime: certLifetime, cp: map[string]*component{}}
	before := rootMeshletRules(t)
	m.kube = kubetest.Start(t)
	m.client = m.kube.Client()
	m.bin = binaries(t)
	dir, err := os.MkdirTemp("", "meshlet-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	m.dir = dir
	m.procs = &procs{logs: filepath.Join(dir, "logs")}
	if err := os.MkdirAll(m.procs.logs, 0o755); err != nil {
		t.Fatal(err)
	}
	// Registered first, so it runs last: after every process, namespace and
	// file of the run is gone, check that it is.
	t.Cleanup(func() {
		var left []string
		left = append(left, m.procs.leftovers()...)
		left = append(left, m.net.leftovers()...)
		if after := rootMeshletRules(t); after != before {
			left = append(left, fmt.Sprintf("the host's iptables changed: %d meshlet rules before, %d after", before, after))
		}
		for _, l := range left {
			t.Errorf("e2e: left behind: %s", l)
		}
		if os.Getenv("MESHLET_E2E_KEEP") == "1" {
			t.Logf("kept %s", dir)
			return
		}
		os.RemoveAll(dir)
	})
	m.net = newNetwork(t, prefix)
	m.install(t)
	m.startControlPlane(t)
	m.startRelays(t)
	m.registerWebhook(t)
	return m
}

// rootMeshletRules counts the host namespace's iptables lines that mention
// meshlet: the capture must only ever touch pod namespaces.
func rootMeshletRules(t *testing.T) int {
	out := mustRun(t, "iptables-save", "-t", "nat")
	return strings.Count(out, "MESHLET")
}

// install applies `meshctl install` (run in-process), with a webhook
// certificate that is also valid for 127.0.0.1.
func (m *mesh) install(t *testing.T) {
	pkiDir := filepath.Join(m.dir, "pki")
	if err := os.MkdirAll(pkiDir, 0o700); err != nil {
		t.Fatal(err)
	}
	ca, cert, key := webhookPKI(t, pkiDir, cpNamespace)
	var out, errb bytes.Buffer
	args := []string{"install", "--proxy-image=e2e.local/meshlet-proxy", "--registry=e2e.local",
		"--webhook-ca-file=" + ca, "--webhook-cert-file=" + cert, "--webhook-key-file=" + key}
	if lvl := os.Getenv("MESHLET_E2E_PROXY_LOG_LEVEL"); lvl != "" {
		args = append(args, "--proxy-log-level="+lvl)
	}
	if code := meshctl.Main(context.Background(), args, nil, &out, &errb); code != 0 {
		t.Fatalf("e2e: meshctl %s: exit %d: %s", strings.Join(args, " "), code, errb.String())
	}
	applyYAML(t, m.kube, out.Bytes())
}

// applyYAML server-side applies every object of a multi-document YAML.
func applyYAML(t *testing.T, kube *kubetest.Cluster, doc []byte) {
	cfg := kube.Config()
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mapper := restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(doc), 4096)
	ctx := context.Background()
	n := 0
	for {
		var obj unstructured.Unstructured
		if err := dec.Decode(&obj.Object); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("e2e: decode install output: %v", err)
		}
		if len(obj.Object) == 0 {
			continue
		}
		gvk := obj.GroupVersionKind()
		mapping, err := mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			t.Fatalf("e2e: %s: %v", gvk, err)
		}
		var ri dynamic.ResourceInterface = dyn.Resource(mapping.Resource)
		if ns := obj.GetNamespace(); ns != "" {
			ri = dyn.Resource(mapping.Resource).Namespace(ns)
		}
		if _, err := ri.Apply(ctx, obj.GetName(), &obj, metav1.ApplyOptions{FieldManager: "meshlet-e2e", Force: true}); err != nil {
			t.Fatalf("e2e: apply %s %s/%s: %v", gvk.Kind, obj.GetNamespace(), obj.GetName(), err)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("e2e: install output had only %d objects", n)
	}
}

// mount writes a Secret's or ConfigMap's keys as files, as the kubelet
// mounts them into the component's pod.
func (m *mesh) mount(t *testing.T, kind, name string) string {
	ctx := context.Background()
	dir := filepath.Join(m.dir, "mounts", name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	data := map[string][]byte{}
	switch kind {
	case "secret":
		s, err := m.client.CoreV1().Secrets(cpNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		data = s.Data
	case "configmap":
		c, err := m.client.CoreV1().ConfigMaps(cpNamespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range c.Data {
			data[k] = []byte(v)
		}
	}
	for k, v := range data {
		if err := os.WriteFile(filepath.Join(dir, k), v, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// kubeconfig writes a kubeconfig for a control-plane ServiceAccount, with a
// TokenRequest token: each component runs with exactly the RBAC the install
// gives it.
func (m *mesh) kubeconfig(t *testing.T, sa string) string {
	secs := int64(2 * 3600)
	tr, err := m.client.CoreV1().ServiceAccounts(cpNamespace).CreateToken(context.Background(), sa,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("e2e: token for %s: %v", sa, err)
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: m.kube.URL(), CertificateAuthorityData: m.kube.CAPEM()}
	cfg.AuthInfos[sa] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: sa}
	cfg.CurrentContext = "e2e"
	path := filepath.Join(m.dir, "mounts", sa+".kubeconfig")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// deploymentArgs are the arguments the install's Deployment gives the
// component's container; the local overrides are appended (a later flag
// wins).
func (m *mesh) deploymentArgs(t *testing.T, name string) []string {
	d, err := m.client.AppsV1().Deployments(cpNamespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return append([]string(nil), d.Spec.Template.Spec.Containers[0].Args...)
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func (m *mesh) startControlPlane(t *testing.T) {
	issuer := m.mount(t, "secret", "meshlet-identity-issuer")
	tlsDir := m.mount(t, "secret", "meshlet-injector-tls")
	config := m.mount(t, "configmap", "meshlet-config")

	dest := &component{name: "destination", addr: freeAddr(t), adminAddr: freeAddr(t)}
	dest.argv = append(append([]string{filepath.Join(m.bin, "meshlet-destination")}, m.deploymentArgs(t, "meshlet-destination")...),
		"--grpc-addr="+dest.addr, "--admin-addr="+dest.adminAddr, "--kubeconfig="+m.kubeconfig(t, "meshlet-destination"))

	ident := &component{name: "identity", addr: freeAddr(t), adminAddr: freeAddr(t)}
	ident.argv = append(append([]string{filepath.Join(m.bin, "meshlet-identity")}, m.deploymentArgs(t, "meshlet-identity")...),
		"--addr="+ident.addr, "--admin-addr="+ident.adminAddr, "--kubeconfig="+m.kubeconfig(t, "meshlet-identity"),
		"--trust-anchors-file="+filepath.Join(issuer, "ca.crt"),
		"--issuer-cert-file="+filepath.Join(issuer, "tls.crt"), "--issuer-key-file="+filepath.Join(issuer, "tls.key"),
		"--cert-lifetime="+m.certLifetime.String())

	inj := &component{name: "injector", addr: freeAddr(t), adminAddr: freeAddr(t)}
	inj.argv = append(append([]string{filepath.Join(m.bin, "meshlet-injector")}, m.deploymentArgs(t, "meshlet-injector")...),
		"--listen-addr="+inj.addr, "--admin-addr="+inj.adminAddr, "--kubeconfig="+m.kubeconfig(t, "meshlet-injector"),
		"--tls-cert-file="+filepath.Join(tlsDir, "tls.crt"), "--tls-key-file="+filepath.Join(tlsDir, "tls.key"),
		"--config="+filepath.Join(config, "injector.yaml"), "--trust-anchors-file="+filepath.Join(config, "trustAnchorsPEM"))

	for _, c := range []*component{dest, ident, inj} {
		m.cp[c.name] = c
		m.startComponent(t, c)
	}
	for _, c := range []*component{dest, ident, inj} {
		waitHTTP(t, http.DefaultClient, "http://"+c.adminAddr+"/ready", 2*time.Minute, c.proc)
	}
}

func (m *mesh) startComponent(t *testing.T, c *component) {
	c.proc = m.procs.start(t, "meshlet-"+c.name, nil, c.argv...)
}

// restart stops a control-plane component (SIGTERM) and starts it again
// on the same addresses; it returns once the new one is ready.
func (m *mesh) restart(t *testing.T, name string, down time.Duration) {
	c := m.cp[name]
	c.proc.stop(10 * time.Second)
	time.Sleep(down)
	m.startComponent(t, c)
	waitHTTP(t, http.DefaultClient, "http://"+c.adminAddr+"/ready", time.Minute, c.proc)
}

// waitHTTP polls url until it answers 200, failing when p exits first.
func waitHTTP(t *testing.T, client *http.Client, url string, timeout time.Duration, p *proc) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		if p != nil && p.exited() {
			t.Fatalf("e2e: %s exited (%v) before %s answered:\n%s", p.name, p.err, url, p.tail(30))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := client.Do(req)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				cancel()
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
		} else {
			last = err.Error()
		}
		cancel()
		time.Sleep(100 * time.Millisecond)
	}
	name := ""
	if p != nil {
		name = p.name + ": " + p.tail(20)
	}
	t.Fatalf("e2e: %s not ready after %v (last: %s) %s", url, timeout, last, name)
}

// startRelays stands in for kube-proxy for the control plane: the
// Services meshlet-destination and meshlet-identity keep the ClusterIPs
// the API server gave them; the node namespace holds those addresses and
// relays their ports to the processes on the host's loopback. Pods find the
// Services' names in their /etc/hosts (there is no cluster DNS).
func (m *mesh) startRelays(t *testing.T) {
	for _, s := range []struct{ svc, comp string }{{"meshlet-destination", "destination"}, {"meshlet-identity", "identity"}} {
		svc, err := m.client.CoreV1().Services(cpNamespace).Get(context.Background(), s.svc, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ip := svc.Spec.ClusterIP
		mustRun(t, "ip", "-n", m.net.node, "addr", "add", ip+"/32", "dev", "lo")
		for _, p := range svc.Spec.Ports {
			if p.Name != "grpc" {
				continue
			}
			r := startRelay(t, m.net.path(m.net.node), net.JoinHostPort(ip, strconv.Itoa(int(p.Port))), m.cp[s.comp].addr)
			m.relay = append(m.relay, r)
		}
		m.hosts += fmt.Sprintf("%s %s.%s.svc.cluster.local %s.%s.svc\n", ip, s.svc, cpNamespace, s.svc, cpNamespace)
	}
}

// registerWebhook points the install's MutatingWebhookConfiguration at the
// local injector (clientConfig.url), keeping everything else of it.
func (m *mesh) registerWebhook(t *testing.T) {
	ctx := context.Background()
	whs := m.client.AdmissionregistrationV1().MutatingWebhookConfigurations()
	list, err := whs.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Fatalf("e2e: install made %d MutatingWebhookConfigurations, want 1", len(list.Items))
	}
	wh := list.Items[0]
	url := "https://" + m.cp["injector"].addr + "/inject"
	for i := range wh.Webhooks {
		wh.Webhooks[i].ClientConfig.Service = nil
		wh.Webhooks[i].ClientConfig.URL = &url
		// Pods must not be made without a proxy because the injector was
		// slow to answer: a missing sidecar then fails the test loudly.
		fail := admissionregistrationv1.Fail
		wh.Webhooks[i].FailurePolicy = &fail
	}
	if _, err := whs.Update(ctx, &wh, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// relay copies connections accepted in a namespace to a loopback address
// of the host.
type relay struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

func startRelay(t *testing.T, nsPath, listen, target string) *relay {
	ln, err := nsListen(nsPath, listen)
	if err != nil {
		t.Fatalf("e2e: relay %s: %v", listen, err)
	}
	r := &relay{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	r.wg.Add(1)
	go r.serve()
	t.Cleanup(r.close)
	return r
}

func (r *relay) track(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		c.Close()
		return false
	}
	r.conns[c] = struct{}{}
	return true
}

func (r *relay) serve() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		if !r.track(c) {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { r.mu.Lock(); delete(r.conns, c); r.mu.Unlock(); c.Close() }()
			up, err := net.DialTimeout("tcp", r.target, 2*time.Second)
			if err != nil {
				return
			}
			if !r.track(up) {
				return
			}
			defer func() { r.mu.Lock(); delete(r.conns, up); r.mu.Unlock(); up.Close() }()
			done := make(chan struct{}, 2)
			go func() { _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			go func() { _, _ = io.Copy(c, up); c.(*net.TCPConn).CloseWrite(); done <- struct{}{} }()
			<-done
			<-done
		}()
	}
}

func (r *relay) close() {
	r.mu.Lock()
	r.closed = true
	for c := range r.conns {
		c.Close()
	}
	r.mu.Unlock()
	r.ln.Close()
	r.wg.Wait()
}
