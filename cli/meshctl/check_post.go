package meshctl

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/internal/pemutil"
)

// postChecks: the control plane as install left it.
func (r *checkRun) postChecks(ctx context.Context) {
	ns := r.g.namespace
	r.section("control-plane")
	if !r.check(ctx, fmt.Sprintf("control plane namespace %q exists", ns), func(ctx context.Context) (string, error) {
		_, err := r.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return "", err
	}) {
		return
	}
	for _, c := range deploy.Components {
		name := "meshlet-" + c
		r.check(ctx, "Deployment "+name+" is available", r.retry(ctx, func(ctx context.Context) (string, error) {
			return r.deploymentAvailable(ctx, ns, name)
		}))
	}
	for _, c := range deploy.Components {
		name := "meshlet-" + c
		r.check(ctx, "Service "+name+" exists", func(ctx context.Context) (string, error) {
			_, err := r.client.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
			return "", err
		})
	}

	r.check(ctx, "mesh config is valid for the injector", func(ctx context.Context) (string, error) {
		cm, err := r.client.CoreV1().ConfigMaps(ns).Get(ctx, deploy.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		cfg, err := injectorConfig(cm.Data)
		if err != nil {
			return "", err
		}
		return "proxy " + cfg.ProxyImage + ":" + cfg.ProxyVersion, nil
	})

	r.section("identity")
	var anchors []*x509.Certificate
	if !r.check(ctx, "mesh config has trust anchors", func(ctx context.Context) (string, error) {
		cm, err := r.client.CoreV1().ConfigMaps(ns).Get(ctx, deploy.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		pem := cm.Data[deploy.TrustAnchorsKey]
		if pem == "" {
			return "", fmt.Errorf("ConfigMap %s has no %s", deploy.ConfigMapName, deploy.TrustAnchorsKey)
		}
		anchors, err = pemutil.Certificates([]byte(pem))
		if err != nil {
			return "", fmt.Errorf("%s: %w", deploy.TrustAnchorsKey, err)
		}
		return fmt.Sprintf("%d certificate(s)", len(anchors)), nil
	}) {
		anchors = nil
	}
	if anchors != nil {
		r.check(ctx, fmt.Sprintf("trust anchors are valid for at least %s", days(r.o.minValidity)), func(context.Context) (string, error) {
			return "", r.validFor(anchors, r.o.minValidity, false)
		})
		r.check(ctx, "issuer certificate chains to the trust anchors", func(ctx context.Context) (string, error) {
			s, err := r.client.CoreV1().Secrets(ns).Get(ctx, deploy.IssuerSecretName, metav1.GetOptions{})
			if err != nil {
				return "", err
			}
			certs, err := pemutil.Certificates(s.Data["tls.crt"])
			if err != nil {
				return "", fmt.Errorf("secret %s tls.crt: %w", deploy.IssuerSecretName, err)
			}
			key, err := pemutil.PrivateKey(s.Data["tls.key"])
			if err != nil {
				return "", fmt.Errorf("secret %s tls.key: %w", deploy.IssuerSecretName, err)
			}
			if !keyMatches(certs[0], key) {
				return "", fmt.Errorf("secret %s: tls.key does not belong to tls.crt", deploy.IssuerSecretName)
			}
			if err := verifyChain(certs[0], certs[1:], anchors, "", r.o.now()); err != nil {
				return "", err
			}
			return "", r.validFor(certs[:1], r.o.minValidity, true)
		})
	}

	r.section("injector-webhook")
	var caBundle []byte
	if !r.check(ctx, "MutatingWebhookConfiguration "+deploy.WebhookConfigName+" exists", func(ctx context.Context) (string, error) {
		wc, err := r.client.AdmissionregistrationV1().MutatingWebhookConfigurations().Get(ctx, deploy.WebhookConfigName, metav1.GetOptions{})
		if err != nil {
			return "", fmt.Errorf("%w: pods are not injected (reinstall: meshctl install | kubectl apply -f -)", err)
		}
		for _, w := range wc.Webhooks {
			if w.Name != deploy.WebhookName {
				continue
			}
			svc := w.ClientConfig.Service
			if svc == nil || svc.Name != "meshlet-injector" || svc.Namespace != ns {
				return "", fmt.Errorf("webhook %s does not point at Service %s/meshlet-injector", w.Name, ns)
			}
			caBundle = w.ClientConfig.CABundle
			return "", nil
		}
		return "", fmt.Errorf("it has no webhook named %s", deploy.WebhookName)
	}) {
		return
	}
	r.check(ctx, "webhook caBundle is valid for the injector's serving certificate", func(ctx context.Context) (string, error) {
		cas, err := pemutil.Certificates(caBundle)
		if err != nil {
			return "", fmt.Errorf("caBundle: %w", err)
		}
		s, err := r.client.CoreV1().Secrets(ns).Get(ctx, deploy.WebhookSecretName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		certs, err := pemutil.Certificates(s.Data["tls.crt"])
		if err != nil {
			return "", fmt.Errorf("secret %s tls.crt: %w", deploy.WebhookSecretName, err)
		}
		host := "meshlet-injector." + ns + ".svc"
		if err := verifyChain(certs[0], certs[1:], cas, host, r.o.now()); err != nil {
			return "", fmt.Errorf("serving certificate not valid for %s under the caBundle: %w", host, err)
		}
		return "", r.validFor(certs[:1], r.o.minValidity, true)
	})
}

// deploymentAvailable passes when every replica is available. A cluster
// without nodes (a bare API server, as in meshlet's own tests) can run no
// pod, so there the Deployment existing is all that can be checked.
func (r *checkRun) deploymentAvailable(ctx context.Context, ns, name string) (string, error) {
	d, err := r.client.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	if d.Status.AvailableReplicas >= want {
		return fmt.Sprintf("%d/%d", d.Status.AvailableReplicas, want), nil
	}
	nodes, nerr := r.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{Limit: 1})
	if nerr == nil && len(nodes.Items) == 0 {
		return "present; the cluster has no nodes, availability not checked", nil
	}
	return "", fmt.Errorf("%d/%d replicas available", d.Status.AvailableReplicas, want)
}

// validFor fails (or only warns) when a certificate expires within d, and
// always fails when one is expired or not yet valid.
func (r *checkRun) validFor(certs []*x509.Certificate, d time.Duration, warnOnly bool) error {
	now := r.o.now()
	for _, c := range certs {
		switch {
		case now.Before(c.NotBefore):
			return fmt.Errorf("%q is not valid before %s", c.Subject.CommonName, c.NotBefore.UTC().Format(time.RFC3339))
		case now.After(c.NotAfter):
			return fmt.Errorf("%q expired at %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339))
		case c.NotAfter.Sub(now) < d:
			msg := fmt.Sprintf("%q expires at %s, in less than %s", c.Subject.CommonName, c.NotAfter.UTC().Format(time.RFC3339), days(d))
			if warnOnly {
				return warning{msg}
			}
			return errors.New(msg)
		}
	}
	return nil
}

func days(d time.Duration) string {
	return fmt.Sprintf("%d days", int(d.Hours()/24))
}
