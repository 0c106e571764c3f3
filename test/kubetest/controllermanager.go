package kubetest

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func controllerManagerArgs(kubeconfig string, p *clusterPKI) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		// No serving: nothing probes it, and a fixed default port (10257)
		// would clash between test packages.
		"--secure-port=0",
		"--leader-elect=false",
		// Published into every namespace as ConfigMap kube-root-ca.crt.
		"--root-ca-file=" + p.caFile,
		"--service-account-private-key-file=" + p.saKey,
		"--service-cluster-ip-range=" + ServiceCIDR,
		"--profiling=false",
		"--v=1",
	}
}

// startControllerManager runs kube-controller-manager with the admin
// kubeconfig and waits until its controllers work: the ServiceAccount
// controller's "default" ServiceAccount in kube-public, which the harness
// never creates itself, is the sign.
func (c *Cluster) startControllerManager(ctx context.Context, path string) error {
	p, err := startProcess("kube-controller-manager", path, controllerManagerArgs(c.kubeconfig, c.pki),
		filepath.Join(c.dir, "kube-controller-manager.log"))
	if err != nil {
		return err
	}
	if err := c.adopt(&c.kcm, p); err != nil {
		return err
	}
	for {
		if err := p.exitError(); err != nil {
			return c.startError(p, err)
		}
		_, err := c.client.CoreV1().ServiceAccounts(metav1.NamespacePublic).Get(ctx, "default", metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("kubetest: waiting for kube-controller-manager: %w", err)
		}
		select {
		case <-ctx.Done():
			return c.startError(p, fmt.Errorf("kubetest: kube-controller-manager made no ServiceAccount in %s: %w", metav1.NamespacePublic, ctx.Err()))
		case <-p.exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}
