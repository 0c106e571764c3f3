package injector

import (
	"errors"
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/meshlet/meshlet/internal/version"
	"github.com/meshlet/meshlet/proxy/capture"
)

// SidecarMode chooses how the proxy is added.
type SidecarMode string

const (
	// SidecarNative adds the proxy as an init container with
	// restartPolicy: Always (Kubernetes native sidecars, on by default since
	// 1.29): it starts before the app containers, which start only once
	// its startupProbe (/ready) passes, and it doesn't keep a Job running.
	SidecarNative SidecarMode = "native"
	// SidecarContainer adds the proxy as the first regular container, with
	// a postStart hook (`meshlet-proxy await`) that holds the next
	// container's start until the proxy is ready. For clusters without
	// native sidecars; Jobs then never complete on their own.
	SidecarContainer SidecarMode = "container"
)

// Config is the mesh-wide injection configuration (the webhook's flags or
// config file, or meshctl's). Per-pod annotations override some of it.
type Config struct {
	// ProxyImage is the proxy image without tag, e.g.
	// "ghcr.io/meshlet/proxy". Required. It also runs meshlet-init.
	ProxyImage string `json:"proxyImage"`
	// ProxyVersion is the image tag and the value of the
	// meshlet.io/proxy-version annotation. Default: this build's version.
	ProxyVersion string `json:"proxyVersion"`
	// ImagePullPolicy of both containers. Default: IfNotPresent.
	ImagePullPolicy string `json:"imagePullPolicy"`
	// ControlPlaneNamespace is where meshlet-destination and
	// meshlet-identity run; pods in it are never injected. Default "meshlet".
	ControlPlaneNamespace string `json:"controlPlaneNamespace"`
	// TrustDomain of the SPIFFE IDs. Default "cluster.local".
	TrustDomain string `json:"trustDomain"`
	// ClusterDomain is the DNS suffix of Services. Default "cluster.local".
	ClusterDomain string `json:"clusterDomain"`
	// TrustAnchorsPEM are the mesh's root certificates, given to every proxy
	// (MESHLET_PROXY_TRUST_ANCHORS). Required.
	TrustAnchorsPEM string `json:"trustAnchorsPEM"`
	// Sidecar is SidecarNative (default) or SidecarContainer.
	Sidecar SidecarMode `json:"sidecar"`
	// LogLevel of the proxy: debug, info (default), warn, error.
	LogLevel string `json:"logLevel"`
	// Proxy resources (Kubernetes quantities). Defaults: CPU request 50m, no
	// CPU limit (a CPU limit throttles the proxy and adds latency to every
	// request of the app), memory request 32Mi, memory limit 256Mi. An
	// empty value (after defaults) means "not set".
	ProxyCPURequest    string `json:"proxyCPURequest"`
	ProxyCPULimit      string `json:"proxyCPULimit"`
	ProxyMemoryRequest string `json:"proxyMemoryRequest"`
	ProxyMemoryLimit   string `json:"proxyMemoryLimit"`
	// OpaquePorts skip protocol detection: server-speaks-first protocols
	// (SMTP, MySQL, PostgreSQL, Redis, memcached, ...) would otherwise stall
	// while the proxy waits for the client's first bytes. Default
	// DefaultOpaquePorts.
	OpaquePorts string `json:"opaquePorts"`
	// SkipInboundPorts and SkipOutboundPorts are captured by no pod; pods
	// add more with annotations. Default empty.
	SkipInboundPorts  string `json:"skipInboundPorts"`
	SkipOutboundPorts string `json:"skipOutboundPorts"`
	// DisableIPv6Capture leaves IPv6 traffic uncaptured (meshlet-init
	// --ipv6=false). IPv6 capture is on by default so that no TCP leaves a
	// meshed pod unseen; in dual-stack clusters it needs a proxy listening
	// on [::1]:4140 and [::]:4143, and this switch is for proxies that
	// don't (docs/injection.md).
	DisableIPv6Capture bool `json:"disableIPv6Capture"`
	// TokenExpirationSeconds of the projected ServiceAccount token. The
	// kubelet refreshes it at 80% of its life. Default 86400 (one day),
	// minimum 600 (the API server's floor).
	TokenExpirationSeconds int64 `json:"tokenExpirationSeconds"`
}

// DefaultOpaquePorts are ports of common server-speaks-first protocols:
// SMTP (25, 587), MySQL (3306), Galera (4444), PostgreSQL (5432), Redis
// (6379), Elasticsearch transport (9300), memcached (11211).
const DefaultOpaquePorts = "25,587,3306,4444,5432,6379,9300,11211"

// Default resources; see Config.
const (
	DefaultProxyCPURequest    = "50m"
	DefaultProxyMemoryRequest = "32Mi"
	DefaultProxyMemoryLimit   = "256Mi"
)

// WithDefaults returns c with every unset field at its default.
func (c Config) WithDefaults() Config {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.ProxyVersion, version.Version)
	def(&c.ImagePullPolicy, "IfNotPresent")
	def(&c.ControlPlaneNamespace, "meshlet")
	def(&c.TrustDomain, "cluster.local")
	def(&c.ClusterDomain, "cluster.local")
	def((*string)(&c.Sidecar), string(SidecarNative))
	def(&c.LogLevel, "info")
	def(&c.ProxyCPURequest, DefaultProxyCPURequest)
	def(&c.ProxyMemoryRequest, DefaultProxyMemoryRequest)
	def(&c.ProxyMemoryLimit, DefaultProxyMemoryLimit)
	def(&c.OpaquePorts, DefaultOpaquePorts)
	if c.TokenExpirationSeconds == 0 {
		c.TokenExpirationSeconds = 86400
	}
	return c
}

// ErrConfig wraps every configuration (not annotation) error.
var ErrConfig = errors.New("injector: invalid configuration")

// Validate checks c (after WithDefaults).
func (c Config) Validate() error {
	if c.ProxyImage == "" {
		return fmt.Errorf("%w: proxy image is required", ErrConfig)
	}
	if c.TrustAnchorsPEM == "" {
		return fmt.Errorf("%w: trust anchors PEM is required", ErrConfig)
	}
	switch c.Sidecar {
	case SidecarNative, SidecarContainer:
	default:
		return fmt.Errorf("%w: sidecar mode %q is neither %q nor %q", ErrConfig, c.Sidecar, SidecarNative, SidecarContainer)
	}
	if !validLogLevel(c.LogLevel) {
		return fmt.Errorf("%w: log level %q is not one of debug, info, warn, error", ErrConfig, c.LogLevel)
	}
	for _, q := range []struct{ name, v string }{
		{"proxy CPU request", c.ProxyCPURequest}, {"proxy CPU limit", c.ProxyCPULimit},
		{"proxy memory request", c.ProxyMemoryRequest}, {"proxy memory limit", c.ProxyMemoryLimit},
	} {
		if q.v == "" {
			continue
		}
		if _, err := resource.ParseQuantity(q.v); err != nil {
			return fmt.Errorf("%w: %s %q: %v", ErrConfig, q.name, q.v, err)
		}
	}
	for _, p := range []struct{ name, v string }{
		{"opaque ports", c.OpaquePorts}, {"skip inbound ports", c.SkipInboundPorts}, {"skip outbound ports", c.SkipOutboundPorts},
	} {
		if _, err := capture.ParsePorts(p.v); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrConfig, p.name, err)
		}
	}
	if c.TokenExpirationSeconds < 600 {
		return fmt.Errorf("%w: token expiration %ds is below the API server's minimum of 600s", ErrConfig, c.TokenExpirationSeconds)
	}
	return nil
}

func validLogLevel(s string) bool {
	switch s {
	case "debug", "info", "warn", "error":
		return true
	}
	return false
}
