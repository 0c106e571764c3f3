package meshctl

import (
	"context"
	"testing"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// TestInstalledRBAC: each component's ServiceAccount, with a real token,
// can do exactly what the component needs, and not more.
func TestInstalledRBAC(t *testing.T) {
	c := installed(t)
	ctx := context.Background()
	as := func(sa string) kubernetes.Interface {
		cs, err := kubernetes.NewForConfig(c.ServiceAccountConfig(t, "meshlet", sa))
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	list := metav1.ListOptions{Limit: 1}
	dest, ident, inj := as("meshlet-destination"), as("meshlet-identity"), as("meshlet-injector")
	allowed := []struct {
		name string
		do   func() error
	}{
		{"destination lists services", func() error { _, err := dest.CoreV1().Services("").List(ctx, list); return err }},
		{"destination lists endpointslices", func() error { _, err := dest.DiscoveryV1().EndpointSlices("").List(ctx, list); return err }},
		{"destination lists pods", func() error { _, err := dest.CoreV1().Pods("").List(ctx, list); return err }},
		{"destination lists namespaces", func() error { _, err := dest.CoreV1().Namespaces().List(ctx, list); return err }},
		{"identity creates tokenreviews", func() error {
			_, err := ident.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: "x"}}, metav1.CreateOptions{})
			return err
		}},
		{"injector lists namespaces", func() error { _, err := inj.CoreV1().Namespaces().List(ctx, list); return err }},
	}
	for _, a := range allowed {
		if err := a.do(); err != nil {
			t.Errorf("%s: %v", a.name, err)
		}
	}
	denied := []struct {
		name string
		do   func() error
	}{
		{"destination reads secrets", func() error { _, err := dest.CoreV1().Secrets("meshlet").List(ctx, list); return err }},
		{"identity lists pods", func() error { _, err := ident.CoreV1().Pods("").List(ctx, list); return err }},
		{"injector lists pods", func() error { _, err := inj.CoreV1().Pods("").List(ctx, list); return err }},
		{"injector creates tokenreviews", func() error {
			_, err := inj.AuthenticationV1().TokenReviews().Create(ctx, &authnv1.TokenReview{Spec: authnv1.TokenReviewSpec{Token: "x"}}, metav1.CreateOptions{})
			return err
		}},
	}
	for _, d := range denied {
		if err := d.do(); err == nil {
			t.Errorf("%s: allowed", d.name)
		}
	}
}
