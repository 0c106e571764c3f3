// Package kubetest runs a real kube-apiserver, backed by a real etcd, on
// loopback for tests that talk to Kubernetes.
//
// One cluster per test package, fresh namespaces per test:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
//	func TestSomething(t *testing.T) {
//		c := kubetest.Shared(t)        // started on first use; skips without binaries
//		ns := c.Namespace(t)           // deleted (with its content) when t ends
//		client := c.Client()           // admin kubernetes.Interface
//		cfg := c.Config()              // admin *rest.Config (a copy)
//		path := c.Kubeconfig()         // admin kubeconfig file, for binaries the test runs
//		tok := c.Token(t, ns, "default", "identity.meshlet.io", time.Hour) // TokenRequest
//		...
//	}
//
// Start(t) gives a test a cluster of its own, stopped in t.Cleanup; New is
// the same without testing.TB. MainWith and StartWith take Options, e.g.
// Options{ControllerManager: true} to run kube-controller-manager too.
//
// What a cluster is: etcd v3.7.0 and kube-apiserver v1.37.2 on free
// 127.0.0.1 ports, with PKI generated in Go for each cluster (a CA, the
// apiserver's serving certificate for 127.0.0.1/localhost/kubernetes.default,
// an admin client certificate in group system:masters, an ECDSA
// service-account signing key), RBAC authorization, the default admission
// plugins, and --endpoint-reconciler-type=none (required with a loopback
// address). Its state (PKI, kubeconfig, logs, etcd data) is in a temporary
// dir, Cluster.Dir. There is no scheduler or kubelet, and unless asked for
// no kube-controller-manager, so:
//   - Namespace (and New, for "default") creates the "default"
//     ServiceAccount and the "kube-root-ca.crt" ConfigMap;
//   - Deployments make no Pods and Pods are never scheduled or run: create
//     Pods directly and set their status yourself when a test needs it;
//   - nothing makes EndpointSlices from Pods: create them. Their validation
//     rejects loopback addresses; use pod-like ones (10.x) as data;
//   - namespaces are not emptied by a controller: DeleteNamespace does it.
//
// Mutating and validating webhooks work: a webhook served by the test on
// loopback (https://127.0.0.1:port, with its CA as caBundle) is called. A
// webhook configuration is cluster-wide, so give it a namespaceSelector on
// kubernetes.io/metadata.name to see only the test's own namespace.
//
// Binaries: test/kube/build.sh builds them once into a cache outside the
// repository (`make kube-bins`; `make test` does it and sets
// MESHLET_KUBE_BIN_DIR). Without MESHLET_KUBE_BIN_DIR, FindBinaries looks in
// that cache; when it is empty, Start and Shared skip with a message saying
// to run `make kube-bins`. With MESHLET_KUBE_BIN_DIR set, missing binaries
// fail the test. See docs/testing.md.
//
// Cleanup: Stop kills both processes and removes the state dir; Start and
// Main call it, also when tests fail. A panicking test ends the binary
// before Main can run, and a -timeout panic or SIGKILL ends it at once; the
// children die with it anyway (Pdeathsig), and the next cluster started on
// the machine removes state dirs whose test binary is gone. SIGINT, SIGTERM
// and SIGHUP of the test binary stop every cluster, and then the signal ends
// the binary as it would have anyway; so a test must not send its own
// process those signals while a cluster runs.
package kubetest
