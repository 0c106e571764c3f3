package injector

// Annotations and names read or written by the injector (docs/annotations.md).
const (
	// AnnotationInject on a namespace or pod: "enabled" or "disabled". The
	// pod's value wins over the namespace's.
	AnnotationInject = "meshlet.io/inject"
	// AnnotationProxyVersion marks an injected pod with the proxy version.
	AnnotationProxyVersion = "meshlet.io/proxy-version"
	// AnnotationIdentity marks an injected pod with its SPIFFE ID.
	AnnotationIdentity = "meshlet.io/identity"

	// ConfigPrefix starts every per-pod override annotation.
	ConfigPrefix = "config.meshlet.io/"

	AnnotationProxyCPURequest    = ConfigPrefix + "proxy-cpu-request"
	AnnotationProxyCPULimit      = ConfigPrefix + "proxy-cpu-limit"
	AnnotationProxyMemoryRequest = ConfigPrefix + "proxy-memory-request"
	AnnotationProxyMemoryLimit   = ConfigPrefix + "proxy-memory-limit"
	AnnotationProxyLogLevel      = ConfigPrefix + "proxy-log-level"
	AnnotationSkipInboundPorts   = ConfigPrefix + "skip-inbound-ports"
	AnnotationSkipOutboundPorts  = ConfigPrefix + "skip-outbound-ports"
	AnnotationOpaquePorts        = ConfigPrefix + "opaque-ports"
	AnnotationProxyImage         = ConfigPrefix + "proxy-image"
	AnnotationProxyVersionConfig = ConfigPrefix + "proxy-version"

	// InjectEnabled and InjectDisabled are the values of AnnotationInject.
	InjectEnabled  = "enabled"
	InjectDisabled = "disabled"
)

// Names of what the injector adds to a pod; Uninject removes exactly these.
const (
	ProxyContainerName = "meshlet-proxy"
	InitContainerName  = "meshlet-init"
	TokenVolumeName    = "meshlet-identity-token"
	// XtablesVolumeName is an emptyDir mounted at /run in meshlet-init:
	// iptables takes its lock file there, and the root filesystem is
	// read-only.
	XtablesVolumeName = "meshlet-xtables-lock"
)

// Paths inside the pod.
const (
	TokenDir  = "/var/run/meshlet/tokens"
	TokenFile = "identity-token"
	TokenPath = TokenDir + "/" + TokenFile
)
