package injector

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/meshlet/meshlet/proxy/capture"
)

// Ports and UID of the proxy (docs/architecture.md).
const (
	ProxyUID          = capture.DefaultProxyUID
	InboundPort       = capture.DefaultInboundPort
	OutboundPort      = capture.DefaultOutboundPort
	AdminPort         = 4191
	DestinationPort   = 8086
	IdentityPort      = 8080
	ProxyCommand      = "meshlet-proxy"
	envPrefix         = "MESHLET_PROXY_"
	envNamespace      = envPrefix + "POD_NAMESPACE"
	envServiceAccount = envPrefix + "SERVICE_ACCOUNT"
)

// IdentityFor is the SPIFFE ID of a pod's ServiceAccount.
func IdentityFor(trustDomain, namespace, serviceAccount string) string {
	return fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", trustDomain, namespace, serviceAccount)
}

// serviceAccountOf is the ServiceAccount the pod runs as; the API server
// sets "default" when the spec names none.
func serviceAccountOf(spec *corev1.PodSpec) string {
	if spec.ServiceAccountName != "" {
		return spec.ServiceAccountName
	}
	if spec.DeprecatedServiceAccount != "" {
		return spec.DeprecatedServiceAccount
	}
	return "default"
}

func ptr[T any](v T) *T { return &v }

func fieldEnv(name, path string) corev1.EnvVar {
	return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{
		FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: path},
	}}
}

func httpProbe(path string, period, failures int32) *corev1.Probe {
	return &corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{
			Path: path, Port: intstr.FromInt32(AdminPort), Scheme: corev1.URISchemeHTTP,
		}},
		PeriodSeconds:    period,
		FailureThreshold: failures,
		TimeoutSeconds:   1,
		SuccessThreshold: 1,
	}
}

// proxyContainer builds meshlet-proxy for a pod with settings s.
func proxyContainer(cfg Config, s podSettings) corev1.Container {
	svc := func(name string, port int) string {
		return fmt.Sprintf("%s.%s.svc.%s:%d", name, cfg.ControlPlaneNamespace, cfg.ClusterDomain, port)
	}
	c := corev1.Container{
		Name:            ProxyContainerName,
		Image:           imageRef(s.image, s.version),
		ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy),
		Env: []corev1.EnvVar{
			fieldEnv(envPrefix+"POD_NAME", "metadata.name"),
			fieldEnv(envNamespace, "metadata.namespace"),
			fieldEnv(envServiceAccount, "spec.serviceAccountName"),
			{Name: envPrefix + "OUTBOUND_ADDR", Value: fmt.Sprintf("127.0.0.1:%d", OutboundPort)},
			{Name: envPrefix + "INBOUND_ADDR", Value: fmt.Sprintf("0.0.0.0:%d", InboundPort)},
			{Name: envPrefix + "ADMIN_ADDR", Value: fmt.Sprintf("0.0.0.0:%d", AdminPort)},
			{Name: envPrefix + "DESTINATION_ADDR", Value: svc("meshlet-destination", DestinationPort)},
			{Name: envPrefix + "IDENTITY_ADDR", Value: svc("meshlet-identity", IdentityPort)},
			{Name: envPrefix + "IDENTITY_TOKEN_FILE", Value: TokenPath},
			// meshlet-identity serves Certify over TLS with this identity:
			// the token is sent only to it, never in the clear.
			{Name: envPrefix + "IDENTITY_SERVER_ID", Value: fmt.Sprintf("spiffe://%s/ns/%s/sa/meshlet-identity", cfg.TrustDomain, cfg.ControlPlaneNamespace)},
			{Name: envPrefix + "TRUST_ANCHORS", Value: cfg.TrustAnchorsPEM},
			// $(VAR) is expanded by the kubelet from the variables above, so
			// the ID is right even when the namespace is unknown at injection
			// time (meshctl inject on a manifest without one).
			{Name: envPrefix + "IDENTITY", Value: IdentityFor(cfg.TrustDomain, "$("+envNamespace+")", "$("+envServiceAccount+")")},
			{Name: envPrefix + "OPAQUE_PORTS", Value: s.opaquePorts.String()},
			{Name: envPrefix + "LOG_LEVEL", Value: s.logLevel},
		},
		Ports: []corev1.ContainerPort{
			{Name: "meshlet-inbound", ContainerPort: InboundPort, Protocol: corev1.ProtocolTCP},
			{Name: "meshlet-admin", ContainerPort: AdminPort, Protocol: corev1.ProtocolTCP},
		},
		ReadinessProbe: httpProbe("/ready", 10, 3),
		LivenessProbe:  httpProbe("/live", 10, 3),
		Resources:      s.resources,
		VolumeMounts: []corev1.VolumeMount{
			{Name: TokenVolumeName, MountPath: TokenDir, ReadOnly: true},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			RunAsUser:                ptr(int64(ProxyUID)),
			RunAsGroup:               ptr(int64(ProxyUID)),
			RunAsNonRoot:             ptr(true),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
	switch cfg.Sidecar {
	case SidecarNative:
		c.RestartPolicy = ptr(corev1.ContainerRestartPolicyAlways)
		// The kubelet starts the next container only once this passes: the
		// app never runs before its proxy can carry traffic. Up to 2 minutes.
		c.StartupProbe = httpProbe("/ready", 1, 120)
	case SidecarContainer:
		c.Lifecycle = &corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{
			Exec: &corev1.ExecAction{Command: []string{ProxyCommand, "await", fmt.Sprintf("--admin-addr=127.0.0.1:%d", AdminPort), "--timeout=2m"}},
		}}
	}
	if n := proxyCores(s.resources); n > 0 {
		c.Env = append(c.Env, corev1.EnvVar{Name: envPrefix + "CORES", Value: strconv.Itoa(n)})
	}
	return c
}

// proxyCores is the number of cores for a proxy with resources r: its CPU
// limit rounded up, or 0 without one (the proxy's default, one core,
// stands). A limit of 2 CPUs lets the proxy use 2 cores at once.
func proxyCores(r corev1.ResourceRequirements) int {
	lim, ok := r.Limits[corev1.ResourceCPU]
	if !ok || lim.Sign() <= 0 {
		return 0
	}
	return int((lim.MilliValue() + 999) / 1000)
}

// initContainer builds meshlet-init, which programs the iptables redirect.
func initContainer(cfg Config, s podSettings) corev1.Container {
	cc := capture.DefaultConfig()
	cc.SkipInboundPorts = s.skipIn
	cc.SkipOutboundPorts = s.skipOut
	cc.IPv6 = !cfg.DisableIPv6Capture
	return corev1.Container{
		Name:            InitContainerName,
		Image:           imageRef(s.image, s.version),
		ImagePullPolicy: corev1.PullPolicy(cfg.ImagePullPolicy),
		Command:         []string{ProxyCommand, "init"},
		Args:            cc.Args(),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("10m"),
				corev1.ResourceMemory: resource.MustParse("16Mi"),
			},
			Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: XtablesVolumeName, MountPath: "/run"},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
		SecurityContext: &corev1.SecurityContext{
			// iptables needs root and these two capabilities, nothing else.
			RunAsUser:                ptr(int64(0)),
			RunAsNonRoot:             ptr(false),
			Privileged:               ptr(false),
			AllowPrivilegeEscalation: ptr(false),
			ReadOnlyRootFilesystem:   ptr(true),
			Capabilities: &corev1.Capabilities{
				Add:  []corev1.Capability{"NET_ADMIN", "NET_RAW"},
				Drop: []corev1.Capability{"ALL"},
			},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
	}
}

// volumes are the pod volumes the two containers mount.
func volumes(cfg Config) []corev1.Volume {
	return []corev1.Volume{
		{Name: TokenVolumeName, VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{
			Sources: []corev1.VolumeProjection{{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Audience:          "identity.meshlet.io",
				ExpirationSeconds: ptr(cfg.TokenExpirationSeconds),
				Path:              TokenFile,
			}}},
			DefaultMode: ptr(int32(0o444)),
		}}},
		{Name: XtablesVolumeName, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{
			Medium: corev1.StorageMediumMemory, SizeLimit: ptr(resource.MustParse("1Mi")),
		}}},
	}
}
