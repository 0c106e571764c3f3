package webhook

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// NamespaceSource gives a namespace's annotations.
type NamespaceSource interface {
	// NamespaceAnnotations returns the annotations of the namespace name;
	// a namespace that doesn't exist is an error.
	NamespaceAnnotations(ctx context.Context, name string) (map[string]string, error)
}

// NamespaceInformer keeps every Namespace in a local cache (one watch, no
// API call per admission request). A namespace missing from the cache (made
// a moment ago, before the watch delivered it) is fetched from the API.
type NamespaceInformer struct {
	client  kubernetes.Interface
	factory informers.SharedInformerFactory
	lister  corelisters.NamespaceLister
	synced  cache.InformerSynced
}

// NewNamespaceInformer prepares the informer; Start runs it.
func NewNamespaceInformer(client kubernetes.Interface) *NamespaceInformer {
	f := informers.NewSharedInformerFactory(client, 10*time.Minute)
	inf := f.Core().V1().Namespaces()
	return &NamespaceInformer{client: client, factory: f, lister: inf.Lister(), synced: inf.Informer().HasSynced}
}

// Start runs the informer until ctx ends and waits for the first list.
func (n *NamespaceInformer) Start(ctx context.Context) error {
	n.factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), n.synced) {
		return fmt.Errorf("webhook: namespace cache did not sync: %w", ctx.Err())
	}
	return nil
}

// Shutdown waits for the informer's goroutines after ctx ended.
func (n *NamespaceInformer) Shutdown() { n.factory.Shutdown() }

// Synced reports whether the first list has arrived.
func (n *NamespaceInformer) Synced() bool { return n.synced() }

// NamespaceAnnotations implements NamespaceSource.
func (n *NamespaceInformer) NamespaceAnnotations(ctx context.Context, name string) (map[string]string, error) {
	ns, err := n.lister.Get(name)
	if apierrors.IsNotFound(err) {
		ns, err = n.client.CoreV1().Namespaces().Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return nil, fmt.Errorf("webhook: namespace %q: %w", name, err)
	}
	return ns.Annotations, nil
}
