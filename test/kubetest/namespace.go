package kubetest

import (
	"context"
	"crypto/rand"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
)

// TestLabel is set on every namespace Namespace creates; its value is the
// (sanitised) test name.
const TestLabel = "kubetest.meshlet.io/test"

// cleanupTimeout bounds each cleanup's calls to the apiserver.
const cleanupTimeout = 30 * time.Second

var notNameChar = regexp.MustCompile(`[^a-z0-9-]+`)

// Namespace creates a namespace for t, named after the test plus a random
// suffix, with the "default" ServiceAccount and the "kube-root-ca.crt"
// ConfigMap a controller-manager would add. It is labelled TestLabel=<test>
// and kubernetes.io/metadata.name=<name> (set by the apiserver), which a
// webhook's namespaceSelector can match to see only this test's objects.
//
// When t ends the namespace is deleted for real: there is no namespace
// controller, so the cleanup deletes every namespaced object in it and
// finalizes the namespace itself, as that controller would.
func (c *Cluster) Namespace(tb testing.TB) string {
	tb.Helper()
	base := strings.Trim(notNameChar.ReplaceAllString(strings.ToLower(tb.Name()), "-"), "-")
	if len(base) > 40 {
		base = strings.Trim(base[:40], "-")
	}
	if base == "" {
		base = "test"
	}
	name := base + "-" + strings.ToLower(rand.Text()[:6])
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   name,
		Labels: map[string]string{TestLabel: labelValue(base)},
	}}
	if _, err := c.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		tb.Fatalf("kubetest: create namespace %s: %v", name, err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := c.DeleteNamespace(ctx, name); err != nil {
			tb.Errorf("kubetest: %v", err)
		}
	})
	if err := c.prepareNamespace(ctx, name); err != nil {
		tb.Fatal(err)
	}
	return name
}

// labelValue fits s into a label value (at most 63 characters, alphanumeric
// at both ends).
func labelValue(s string) string {
	if len(s) > 63 {
		s = s[:63]
	}
	return strings.Trim(s, "-")
}

// DeleteNamespace deletes a namespace and everything in it, and returns
// once it is gone. It does the namespace controller's work, which this
// cluster has none of: delete the namespace (which stops new objects from
// being created in it), delete every collection of namespaced objects in it
// without grace (no kubelet will ever confirm a Pod's end), then remove the
// "kubernetes" finalizer. Objects held by other finalizers keep it alive;
// that is an error.
func (c *Cluster) DeleteNamespace(ctx context.Context, name string) error {
	err := c.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("kubetest: delete namespace %s: %w", name, err)
	}
	resources, err := c.deletableResources()
	if err != nil {
		return err
	}
	quiet := c.Config()
	// Bulk deletes draw deprecation and propagation warnings that mean
	// nothing here.
	quiet.WarningHandler = rest.NoWarnings{}
	dyn, err := dynamic.NewForConfig(quiet)
	if err != nil {
		return fmt.Errorf("kubetest: dynamic client: %w", err)
	}
	zero := int64(0)
	background := metav1.DeletePropagationBackground
	for _, gvr := range resources {
		err := dyn.Resource(gvr).Namespace(name).DeleteCollection(ctx,
			metav1.DeleteOptions{GracePeriodSeconds: &zero, PropagationPolicy: &background}, metav1.ListOptions{})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsMethodNotSupported(err) {
			return fmt.Errorf("kubetest: delete %s in namespace %s: %w", gvr.String(), name, err)
		}
	}
	// Finalize until the apiserver lets the namespace go; the first call may
	// race with the deletions above settling.
	for {
		ns, err := c.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("kubetest: namespace %s: %w", name, err)
		}
		if len(ns.Spec.Finalizers) > 0 {
			ns.Spec.Finalizers = nil
			if _, err := c.client.CoreV1().Namespaces().Finalize(ctx, ns, metav1.UpdateOptions{}); err != nil &&
				!apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("kubetest: finalize namespace %s: %w", name, err)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kubetest: namespace %s still there (finalizers %v): %w", name, ns.Finalizers, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// deletableResources lists the namespaced resources that support
// deletecollection, asked anew each time since tests install CRDs.
func (c *Cluster) deletableResources() ([]schema.GroupVersionResource, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(c.config)
	if err != nil {
		return nil, fmt.Errorf("kubetest: discovery client: %w", err)
	}
	lists, err := dc.ServerPreferredNamespacedResources()
	if err != nil && len(lists) == 0 {
		// A partial answer (an aggregated API down) still lists the rest.
		return nil, fmt.Errorf("kubetest: discovery: %w", err)
	}
	var out []schema.GroupVersionResource
	for _, list := range lists {
		gv, err := schema.ParseGroupVersion(list.GroupVersion)
		if err != nil {
			continue
		}
		for _, r := range list.APIResources {
			if strings.Contains(r.Name, "/") || !hasVerb(r.Verbs, "deletecollection") {
				continue // a subresource, or not deletable in bulk
			}
			out = append(out, gv.WithResource(r.Name))
		}
	}
	return out, nil
}

func hasVerb(verbs metav1.Verbs, want string) bool {
	for _, v := range verbs {
		if v == want {
			return true
		}
	}
	return false
}

// ServiceAccount creates a ServiceAccount (a no-op if it exists) and
// returns its name.
func (c *Cluster) ServiceAccount(tb testing.TB, ns, name string) string {
	tb.Helper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}
	_, err := c.client.CoreV1().ServiceAccounts(ns).Create(context.Background(), sa, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		tb.Fatalf("kubetest: create ServiceAccount %s/%s: %v", ns, name, err)
	}
	return name
}

// Token returns a token for ServiceAccount ns/sa from the TokenRequest API,
// valid for audience (the issuer, Issuer, when empty) for ttl. The apiserver
// rejects a ttl under 10 minutes. The ServiceAccount must exist (see
// ServiceAccount; Namespace creates "default").
func (c *Cluster) Token(tb testing.TB, ns, sa, audience string, ttl time.Duration) string {
	tb.Helper()
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}
	if audience != "" {
		tr.Spec.Audiences = []string{audience}
	}
	if ttl > 0 {
		secs := int64(ttl / time.Second)
		tr.Spec.ExpirationSeconds = &secs
	}
	got, err := c.client.CoreV1().ServiceAccounts(ns).CreateToken(context.Background(), sa, tr, metav1.CreateOptions{})
	if err != nil {
		tb.Fatalf("kubetest: TokenRequest for %s/%s: %v", ns, sa, err)
	}
	return got.Status.Token
}

// UserConfig returns a client config authenticating as user, in groups,
// through a client certificate the cluster's CA signs: for tests of RBAC,
// e.g. a component running with only the ClusterRole its manifest grants.
func (c *Cluster) UserConfig(tb testing.TB, user string, groups ...string) *rest.Config {
	tb.Helper()
	l, err := c.pki.ca.issue(leafSpec{commonName: user, organizations: groups})
	if err != nil {
		tb.Fatal(err)
	}
	cfg := c.Config()
	cfg.CertData, cfg.KeyData = l.certPEM, l.keyPEM
	return cfg
}

// ServiceAccountConfig returns a client config authenticating as the
// ServiceAccount ns/sa with a fresh bound token (audience: the issuer), the
// way a Pod of the component would.
func (c *Cluster) ServiceAccountConfig(tb testing.TB, ns, sa string) *rest.Config {
	tb.Helper()
	cfg := c.Config()
	cfg.CertData, cfg.KeyData = nil, nil
	cfg.BearerToken = c.Token(tb, ns, sa, "", time.Hour)
	return cfg
}
