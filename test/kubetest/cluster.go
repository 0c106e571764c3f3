package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// Options tune New. The zero value is what tests want.
type Options struct {
	// Binaries to run; zero means FindBinaries.
	Binaries Binaries
	// StartTimeout bounds the wait for etcd and for the apiserver's /readyz.
	// Zero means 2 minutes: the apiserver is ready in 2–5 s on an idle
	// machine, far slower while the machine compiles.
	StartTimeout time.Duration
	// ExtraAPIServerArgs are appended to the apiserver's flags (a later
	// flag wins), e.g. "--feature-gates=...".
	ExtraAPIServerArgs []string
	// ControllerManager also runs kube-controller-manager, so the cluster
	// behaves more like a real one: Deployments make ReplicaSets and Pods
	// (which stay Pending: there is still no scheduler or kubelet), Services
	// get EndpointSlices from ready Pods with an IP (see SetPodRunning; the
	// Pod's node must exist), namespaces are emptied on deletion, the
	// garbage collector follows ownerReferences. It costs about 2 s of
	// start-up and 100 MB.
	ControllerManager bool
	// Logf receives progress lines (where the state is, how long start took);
	// nil discards them.
	Logf func(format string, args ...any)
}

// Cluster is a running etcd and kube-apiserver on loopback. Its methods are
// safe for concurrent use.
type Cluster struct {
	dir        string // state dir: PKI, kubeconfig, logs, etcd data
	url        string // https://127.0.0.1:port
	pki        *clusterPKI
	kubeconfig string
	config     *rest.Config
	client     kubernetes.Interface
	ports      []int // every port the two processes listen on
	logf       func(string, ...any)

	// mu guards the processes against a Stop from the signal watcher
	// while start is still starting them.
	mu        sync.Mutex
	etcd      *process
	apiserver *process
	kcm       *process // nil without Options.ControllerManager
	stopped   bool

	stopOnce sync.Once
	stopErr  error
}

// Service-account token issuer of every test cluster (also the default
// audience of tokens requested without one).
const Issuer = "https://kubernetes.default.svc.cluster.local"

// ServiceCIDR is the apiserver's --service-cluster-ip-range.
const ServiceCIDR = "10.96.0.0/12"

// New starts etcd and kube-apiserver on free loopback ports with fresh PKI in
// a new state dir, and returns once /readyz answers ok. The caller must Stop
// the cluster. Tests should use Start or Shared, which also skip when the
// binaries are missing.
func New(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Binaries.APIServer == "" {
		b, err := FindBinaries()
		if err != nil {
			return nil, err
		}
		opts.Binaries = b
	}
	if opts.ControllerManager && opts.Binaries.ControllerManager == "" {
		return nil, fmt.Errorf("%w (the build in %s has no kube-controller-manager)", ErrNoBinaries, opts.Binaries.Dir)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 2 * time.Minute
	}
	if opts.Logf == nil {
		opts.Logf = func(string, ...any) {}
	}
	pruneStale()
	var err error
	// A port found free can be taken by someone else before the child binds
	// it; start again on new ports when that is why the start failed.
	for attempt := 1; attempt <= 3; attempt++ {
		var c *Cluster
		c, err = start(ctx, opts)
		if err == nil {
			return c, nil
		}
		if !errors.Is(err, errPortTaken) {
			break
		}
		opts.Logf("kubetest: a port was taken meanwhile, starting again (attempt %d)", attempt)
	}
	return nil, err
}

var errPortTaken = errors.New("kubetest: a port was taken before the child could bind it")

func start(ctx context.Context, opts Options) (_ *Cluster, err error) {
	begin := time.Now()
	dir, err := newStateDir()
	if err != nil {
		return nil, err
	}
	c := &Cluster{dir: dir, logf: opts.Logf}
	defer func() {
		if err != nil {
			c.Stop()
		}
	}()
	c.pki, err = writePKI(filepath.Join(dir, "pki"))
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	c.ports = ports
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]
	c.url = "https://127.0.0.1:" + strconv.Itoa(apiPort)

	ctx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()

	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	track(c)
	etcd, err := startProcess("etcd", opts.Binaries.Etcd, etcdArgs(dir, etcdURL, etcdPeer), filepath.Join(dir, "etcd.log"))
	if err != nil {
		return nil, err
	}
	if err := c.adopt(&c.etcd, etcd); err != nil {
		return nil, err
	}
	// Own clients, their idle connections closed after use: a test that
	// checks for leaked goroutines must not find the harness' probes.
	etcdProbe := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	defer etcdProbe.CloseIdleConnections()
	if err := waitReady(ctx, etcd, etcdProbe, etcdURL+"/health", `"health":"true"`); err != nil {
		return nil, c.startError(etcd, err)
	}

	args := append(apiserverArgs(c.pki, etcdURL, apiPort), opts.ExtraAPIServerArgs...)
	apiserver, err := startProcess("kube-apiserver", opts.Binaries.APIServer, args, filepath.Join(dir, "kube-apiserver.log"))
	if err != nil {
		return nil, err
	}
	if err := c.adopt(&c.apiserver, apiserver); err != nil {
		return nil, err
	}
	c.config = c.adminConfig()
	probe, err := probeClient(c.config)
	if err != nil {
		return nil, err
	}
	defer probe.CloseIdleConnections()
	if err := waitReady(ctx, apiserver, probe, c.url+"/readyz", "ok"); err != nil {
		return nil, c.startError(apiserver, err)
	}
	if c.client, err = kubernetes.NewForConfig(c.config); err != nil {
		return nil, fmt.Errorf("kubetest: client: %w", err)
	}
	if c.kubeconfig, err = writeKubeconfig(filepath.Join(dir, "kubeconfig"), c.url, c.pki.ca.certPEM, c.pki.admin); err != nil {
		return nil, err
	}
	if opts.ControllerManager {
		if err := c.startControllerManager(ctx, opts.Binaries.ControllerManager); err != nil {
			return nil, err
		}
	}
	// What kube-controller-manager would do for the default namespace (or
	// will soon, when it runs).
	if err := c.prepareNamespace(ctx, metav1.NamespaceDefault); err != nil {
		return nil, err
	}
	c.logf("kubetest: kube-apiserver %s ready in %v (state in %s; binaries %s)",
		c.url, time.Since(begin).Round(time.Millisecond), dir, opts.Binaries.Note)
	return c, nil
}

// adopt records a started child in *slot, or kills it when the cluster was
// stopped (by a signal) while it started.
func (c *Cluster) adopt(slot **process, p *process) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		p.kill()
		return errors.New("kubetest: cluster stopped while starting")
	}
	*slot = p
	return nil
}

// startError adds the tail of the child's log to a start-up failure; that
// is where the reason is.
func (c *Cluster) startError(p *process, err error) error {
	return fmt.Errorf("%w\n--- last lines of %s ---\n%s", err, p.logPath, p.tail(40))
}

func (c *Cluster) adminConfig() *rest.Config {
	return &rest.Config{
		Host: c.url,
		TLSClientConfig: rest.TLSClientConfig{
			CAData:   c.pki.ca.certPEM,
			CertData: c.pki.admin.certPEM,
			KeyData:  c.pki.admin.keyPEM,
		},
		// Tests create objects in bursts; client-side throttling (5 QPS by
		// default) would only slow them down against a local apiserver.
		QPS:   1000,
		Burst: 2000,
	}
}

// prepareNamespace creates what kube-controller-manager would in a namespace
// (there is none here): the "default" ServiceAccount, which the
// ServiceAccount admission plugin requires before a Pod can be created, and
// the "kube-root-ca.crt" ConfigMap that projected token volumes reference.
func (c *Cluster) prepareNamespace(ctx context.Context, ns string) error {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default"}}
	if _, err := c.client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubetest: create ServiceAccount %s/default: %w", ns, err)
	}
	cm := &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "kube-root-ca.crt"},
		Data:       map[string]string{"ca.crt": string(c.pki.ca.certPEM)},
	}
	if _, err := c.client.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("kubetest: create ConfigMap %s/kube-root-ca.crt: %w", ns, err)
	}
	return nil
}

// Config returns a new admin (system:masters) client config; callers may
// change their copy.
func (c *Cluster) Config() *rest.Config { return rest.CopyConfig(c.config) }

// Client returns an admin clientset.
func (c *Cluster) Client() kubernetes.Interface { return c.client }

// Kubeconfig is the path of an admin kubeconfig file with the credentials
// embedded, for programs a test starts (`meshctl --kubeconfig`, KUBECONFIG=).
func (c *Cluster) Kubeconfig() string { return c.kubeconfig }

// URL is the apiserver's address, https://127.0.0.1:<port>.
func (c *Cluster) URL() string { return c.url }

// CAFile is the path of the PEM CA certificate that signed the apiserver's
// serving certificate and the client certificates.
func (c *Cluster) CAFile() string { return c.pki.caFile }

// CAPEM is the CA certificate, PEM-encoded.
func (c *Cluster) CAPEM() []byte { return append([]byte(nil), c.pki.ca.certPEM...) }

// ServiceAccountKeyFile is the path of the PEM (PKCS#8) ECDSA P-256 key
// that signs the cluster's service-account tokens: for tests that need a
// token TokenRequest will not make (expired, odd claims) yet the apiserver
// verifies.
func (c *Cluster) ServiceAccountKeyFile() string { return c.pki.saKey }

// Dir is the cluster's state dir; etcd.log and kube-apiserver.log are in it.
func (c *Cluster) Dir() string { return c.dir }

// Stop kills kube-controller-manager (if any), kube-apiserver, then etcd, waits until both are gone and
// removes the state dir (unless MESHLET_KUBETEST_KEEP=1). Calling it again
// returns the first result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() {
		untrack(c)
		c.mu.Lock()
		c.stopped = true
		procs := []*process{c.kcm, c.apiserver, c.etcd}
		c.mu.Unlock()
		for _, p := range procs {
			if p != nil {
				p.kill()
			}
		}
		if os.Getenv(EnvKeep) == "1" {
			if err := os.WriteFile(filepath.Join(c.dir, ownerFile), []byte(keptOwner+"\n"), 0o600); err != nil {
				c.stopErr = fmt.Errorf("kubetest: keep state dir: %w", err)
			}
			c.logf("kubetest: kept the state dir %s (%s=1); remove it when done", c.dir, EnvKeep)
			return
		}
		if err := os.RemoveAll(c.dir); err != nil {
			c.stopErr = fmt.Errorf("kubetest: remove state dir: %w", err)
		}
	})
	return c.stopErr
}
