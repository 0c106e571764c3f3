package deploy

import (
	"errors"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// Values is everything the control-plane templates need. meshctl install
// fills it from its flags and generated (or given) key material; every field
// ends up somewhere in the manifests, so the same Values always render the
// same bytes.
type Values struct {
	// Namespace of the control plane. Default "meshlet".
	Namespace string
	// Version labels every object (app.kubernetes.io/version) and is written
	// to the mesh config as controlPlaneVersion. Required.
	Version string
	// Registry is the image repository prefix, e.g. "ghcr.io/meshlet"; images
	// are <Registry>/meshlet-<component>:<Tag>. Required.
	Registry string
	// Tag of the control-plane images. Required.
	Tag string
	// ImagePullPolicy of every container. Default "IfNotPresent".
	ImagePullPolicy string

	// TrustDomain of SPIFFE IDs, e.g. "cluster.local". Required.
	TrustDomain string
	// ClusterDomain is the cluster's DNS suffix, e.g. "cluster.local".
	// Required.
	ClusterDomain string

	// HA runs three replicas of each control-plane component, with a
	// PodDisruptionBudget and anti-affinity across nodes (required) and
	// zones (preferred). Off: one replica each.
	HA bool

	// Proxy settings written to the mesh config, read by the injector.
	Proxy ProxyValues

	// WebhookTimeoutSeconds bounds each admission call (1..30). Default 10.
	WebhookTimeoutSeconds int

	// PKI is the key material. The trust anchor's key is not here on purpose:
	// only its certificate enters the cluster.
	PKI PKI
}

// ProxyValues are the defaults the injector gives every proxy, each
// overridable per pod with config.meshlet.io/* annotations.
type ProxyValues struct {
	// Image without tag. Default "<Registry>/meshlet-proxy".
	Image string
	// Version is the image tag. Default: the control plane's Tag.
	Version string
	// LogLevel: debug, info, warn or error. Default "info".
	LogLevel string
	// CPURequest, MemoryRequest, CPULimit, MemoryLimit are Kubernetes
	// quantities; empty means the injector's default.
	CPURequest, MemoryRequest, CPULimit, MemoryLimit string
	// Sidecar is "native" (an init container with restartPolicy Always,
	// the default) or "container" (for clusters older than 1.29).
	Sidecar string
}

// PKI is the PEM key material installed into the cluster.
type PKI struct {
	// TrustAnchorsPEM: one or more CA certificates every proxy trusts.
	TrustAnchorsPEM string
	// IssuerCertPEM and IssuerKeyPEM: the intermediate CA meshlet-identity
	// signs proxy certificates with; it must chain to a trust anchor.
	IssuerCertPEM, IssuerKeyPEM string
	// WebhookCAPEM is the caBundle of the MutatingWebhookConfiguration;
	// WebhookCertPEM/WebhookKeyPEM is the injector's serving pair, valid for
	// meshlet-injector.<Namespace>.svc and signed by WebhookCAPEM.
	WebhookCAPEM, WebhookCertPEM, WebhookKeyPEM string
}

// Replicas is the replica count of each control-plane Deployment.
func (v Values) Replicas() int {
	if v.HA {
		return 3
	}
	return 1
}

// WithDefaults returns v with every empty optional field set to its
// documented default.
func (v Values) WithDefaults() Values {
	if v.Namespace == "" {
		v.Namespace = DefaultNamespace
	}
	if v.ImagePullPolicy == "" {
		v.ImagePullPolicy = "IfNotPresent"
	}
	if v.WebhookTimeoutSeconds == 0 {
		v.WebhookTimeoutSeconds = 10
	}
	if v.Proxy.Image == "" && v.Registry != "" {
		v.Proxy.Image = strings.TrimSuffix(v.Registry, "/") + "/meshlet-proxy"
	}
	if v.Proxy.Version == "" {
		v.Proxy.Version = v.Tag
	}
	if v.Proxy.LogLevel == "" {
		v.Proxy.LogLevel = "info"
	}
	if v.Proxy.Sidecar == "" {
		v.Proxy.Sidecar = "native"
	}
	return v
}

// DefaultNamespace is the control plane's namespace unless told otherwise.
const DefaultNamespace = "meshlet"

// Validate reports the first field that would render a manifest the API
// server rejects or a control plane that cannot work.
func (v Values) Validate() error {
	if errs := validation.IsDNS1123Label(v.Namespace); len(errs) > 0 {
		return fmt.Errorf("deploy: namespace %q: %s", v.Namespace, strings.Join(errs, "; "))
	}
	for _, f := range []field{{"version", v.Version}, {"registry", v.Registry}, {"tag", v.Tag}} {
		if f.val == "" {
			return fmt.Errorf("deploy: %s is required", f.name)
		}
		if strings.ContainsAny(f.val, " \t\n\"'") {
			return fmt.Errorf("deploy: %s %q contains a space or quote", f.name, f.val)
		}
	}
	if strings.ContainsAny(v.Proxy.Image+v.Proxy.Version, " \t\n\"'") {
		return fmt.Errorf("deploy: proxy image %q:%q contains a space or quote", v.Proxy.Image, v.Proxy.Version)
	}
	for _, f := range []field{{"trust domain", v.TrustDomain}, {"cluster domain", v.ClusterDomain}} {
		if errs := validation.IsDNS1123Subdomain(f.val); len(errs) > 0 {
			return fmt.Errorf("deploy: %s %q: %s", f.name, f.val, strings.Join(errs, "; "))
		}
	}
	switch v.ImagePullPolicy {
	case "Always", "IfNotPresent", "Never":
	default:
		return fmt.Errorf("deploy: image pull policy %q: want Always, IfNotPresent or Never", v.ImagePullPolicy)
	}
	switch v.Proxy.Sidecar {
	case "native", "container":
	default:
		return fmt.Errorf("deploy: proxy sidecar mode %q: want native or container", v.Proxy.Sidecar)
	}
	switch v.Proxy.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("deploy: proxy log level %q: want debug, info, warn or error", v.Proxy.LogLevel)
	}
	for _, f := range []field{
		{"proxy cpu request", v.Proxy.CPURequest}, {"proxy memory request", v.Proxy.MemoryRequest},
		{"proxy cpu limit", v.Proxy.CPULimit}, {"proxy memory limit", v.Proxy.MemoryLimit},
	} {
		if f.val == "" {
			continue
		}
		if _, err := resource.ParseQuantity(f.val); err != nil {
			return fmt.Errorf("deploy: %s %q: %w", f.name, f.val, err)
		}
	}
	if v.WebhookTimeoutSeconds < 1 || v.WebhookTimeoutSeconds > 30 {
		return fmt.Errorf("deploy: webhook timeout %ds: want 1..30 (the API server's limit)", v.WebhookTimeoutSeconds)
	}
	p := v.PKI
	for _, f := range []field{
		{"trust anchors", p.TrustAnchorsPEM}, {"issuer certificate", p.IssuerCertPEM}, {"issuer key", p.IssuerKeyPEM},
		{"webhook ca", p.WebhookCAPEM}, {"webhook certificate", p.WebhookCertPEM}, {"webhook key", p.WebhookKeyPEM},
	} {
		if !strings.Contains(f.val, "-----BEGIN ") {
			return fmt.Errorf("%w: %s", ErrNoPEM, f.name)
		}
	}
	return nil
}

// ErrNoPEM is returned by Validate when key material is missing.
var ErrNoPEM = errors.New("deploy: missing PEM data")

// field names a value for Validate's messages; a slice of them keeps the
// order of checks (and so the reported error) stable.
type field struct{ name, val string }
