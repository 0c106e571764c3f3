package injector

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/proxy/capture"
)

func injectWith(t *testing.T, ann map[string]string, cfg Config) (*corev1.PodSpec, error) {
	t.Helper()
	meta := metav1.ObjectMeta{Annotations: ann}
	spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "app"}}}
	err := InjectPodSpec(&meta, spec, "ns", cfg)
	return spec, err
}

func proxyOf(spec *corev1.PodSpec) *corev1.Container {
	for i := range spec.InitContainers {
		if spec.InitContainers[i].Name == ProxyContainerName {
			return &spec.InitContainers[i]
		}
	}
	for i := range spec.Containers {
		if spec.Containers[i].Name == ProxyContainerName {
			return &spec.Containers[i]
		}
	}
	return nil
}

func envOf(c *corev1.Container, name string) string {
	for _, e := range c.Env {
		if e.Name == name {
			return e.Value
		}
	}
	return "<unset>"
}

func TestAnnotationOverrides(t *testing.T) {
	cases := []struct {
		ann   map[string]string
		check func(t *testing.T, spec *corev1.PodSpec)
	}{
		{map[string]string{AnnotationProxyCPURequest: "250m"}, func(t *testing.T, s *corev1.PodSpec) {
			if q := proxyOf(s).Resources.Requests[corev1.ResourceCPU]; q.String() != "250m" {
				t.Errorf("cpu request %s", q.String())
			}
		}},
		{map[string]string{AnnotationProxyMemoryLimit: "1Gi"}, func(t *testing.T, s *corev1.PodSpec) {
			if q := proxyOf(s).Resources.Limits[corev1.ResourceMemory]; q.String() != "1Gi" {
				t.Errorf("memory limit %s", q.String())
			}
		}},
		{map[string]string{AnnotationProxyCPULimit: "2"}, func(t *testing.T, s *corev1.PodSpec) {
			if q := proxyOf(s).Resources.Limits[corev1.ResourceCPU]; q.String() != "2" {
				t.Errorf("cpu limit %s", q.String())
			}
			if v := envOf(proxyOf(s), "MESHLET_PROXY_CORES"); v != "2" {
				t.Errorf("cores %s, want 2 from the CPU limit", v)
			}
		}},
		{map[string]string{AnnotationProxyCPULimit: "1500m"}, func(t *testing.T, s *corev1.PodSpec) {
			if v := envOf(proxyOf(s), "MESHLET_PROXY_CORES"); v != "2" {
				t.Errorf("cores %s, want 2 (1500m rounded up)", v)
			}
		}},
		{map[string]string{AnnotationProxyCPURequest: "100m"}, func(t *testing.T, s *corev1.PodSpec) {
			if v := envOf(proxyOf(s), "MESHLET_PROXY_CORES"); v != "<unset>" {
				t.Errorf("cores %s without a CPU limit, want the proxy's default", v)
			}
		}},
		{map[string]string{AnnotationProxyLogLevel: "warn"}, func(t *testing.T, s *corev1.PodSpec) {
			if v := envOf(proxyOf(s), "MESHLET_PROXY_LOG_LEVEL"); v != "warn" {
				t.Errorf("log level %s", v)
			}
		}},
		{map[string]string{AnnotationOpaquePorts: "1000-1002, 5"}, func(t *testing.T, s *corev1.PodSpec) {
			if v := envOf(proxyOf(s), "MESHLET_PROXY_OPAQUE_PORTS"); v != "5,1000-1002" {
				t.Errorf("opaque ports %s", v)
			}
		}},
		{map[string]string{AnnotationOpaquePorts: ""}, func(t *testing.T, s *corev1.PodSpec) {
			if v := envOf(proxyOf(s), "MESHLET_PROXY_OPAQUE_PORTS"); v != "" {
				t.Errorf("empty opaque-ports annotation gave %q, want none", v)
			}
		}},
		{map[string]string{AnnotationSkipOutboundPorts: "3306"}, func(t *testing.T, s *corev1.PodSpec) {
			if a := strings.Join(s.InitContainers[0].Args, " "); !strings.Contains(a, "--skip-outbound-ports=3306") {
				t.Errorf("init args %s", a)
			}
		}},
		{map[string]string{AnnotationSkipInboundPorts: "22"}, func(t *testing.T, s *corev1.PodSpec) {
			if a := strings.Join(s.InitContainers[0].Args, " "); !strings.Contains(a, "--skip-inbound-ports=22") {
				t.Errorf("init args %s", a)
			}
		}},
		{map[string]string{AnnotationProxyImage: "mirror.local/proxy@sha256:abc"}, func(t *testing.T, s *corev1.PodSpec) {
			if img := proxyOf(s).Image; img != "mirror.local/proxy@sha256:abc" {
				t.Errorf("image %s", img)
			}
		}},
		{map[string]string{AnnotationProxyVersion + "-ignored": "x", AnnotationProxyVersionConfig: "v2"}, func(t *testing.T, s *corev1.PodSpec) {
			if img := proxyOf(s).Image; img != "ghcr.io/meshlet/proxy:v2" {
				t.Errorf("image %s", img)
			}
			if img := s.InitContainers[0].Image; img != "ghcr.io/meshlet/proxy:v2" {
				t.Errorf("init image %s", img)
			}
		}},
	}
	for _, tc := range cases {
		spec, err := injectWith(t, tc.ann, testConfig())
		if err != nil {
			t.Errorf("%v: %v", tc.ann, err)
			continue
		}
		tc.check(t, spec)
	}
}

func TestMeshWideSkipPortsMerge(t *testing.T) {
	cfg := testConfig()
	cfg.SkipOutboundPorts = "25"
	spec, err := injectWith(t, map[string]string{AnnotationSkipOutboundPorts: "3306"}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if a := strings.Join(spec.InitContainers[0].Args, " "); !strings.Contains(a, "--skip-outbound-ports=25,3306") {
		t.Errorf("init args %s", a)
	}
}

func TestDisableIPv6Capture(t *testing.T) {
	for _, disable := range []bool{false, true} {
		cfg := testConfig()
		cfg.DisableIPv6Capture = disable
		spec, err := injectWith(t, nil, cfg)
		if err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("--ipv6=%t", !disable)
		if a := strings.Join(spec.InitContainers[0].Args, " "); !strings.Contains(a, want) {
			t.Errorf("DisableIPv6Capture=%v: init args %s, want %s", disable, a, want)
		}
	}
}

func TestInvalidAnnotations(t *testing.T) {
	cases := []struct {
		key, value string
		want       string
	}{
		{AnnotationProxyCPURequest, "lots", "not a Kubernetes quantity"},
		{AnnotationProxyCPULimit, "1x", "not a Kubernetes quantity"},
		{AnnotationProxyMemoryRequest, "-1Mi", "must not be negative"},
		{AnnotationProxyMemoryLimit, "12 Mi", "not a Kubernetes quantity"},
		{AnnotationProxyLogLevel, "trace", "debug, info, warn, error"},
		{AnnotationSkipInboundPorts, "22,abc", `"abc" is not a port`},
		{AnnotationSkipOutboundPorts, "70000", `"70000" is not a port`},
		{AnnotationOpaquePorts, "5-1", "ends before it starts"},
		{AnnotationProxyImage, "", "must not be empty"},
		{AnnotationProxyImage, "a b", "no spaces"},
		{AnnotationProxyVersionConfig, "v1:evil", "not an image tag"},
	}
	for _, tc := range cases {
		meta := metav1.ObjectMeta{Annotations: map[string]string{tc.key: tc.value}}
		spec := &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
		err := InjectPodSpec(&meta, spec, "ns", testConfig())
		if !errors.Is(err, ErrAnnotation) {
			t.Errorf("%s=%q: error %v, want ErrAnnotation", tc.key, tc.value, err)
			continue
		}
		msg := err.Error()
		if !strings.Contains(msg, tc.key) || !strings.Contains(msg, tc.value) || !strings.Contains(msg, tc.want) {
			t.Errorf("%s=%q: error %q should name the annotation, the value and say %q", tc.key, tc.value, msg, tc.want)
		}
		if len(spec.InitContainers) != 0 || len(spec.Containers) != 1 || len(meta.Annotations) != 1 {
			t.Errorf("%s=%q: a failed injection changed the pod", tc.key, tc.value)
		}
	}
}

func TestRequestAboveLimit(t *testing.T) {
	_, err := injectWith(t, map[string]string{AnnotationProxyMemoryRequest: "1Gi"}, testConfig()) // default limit 256Mi
	if !errors.Is(err, ErrAnnotation) || !strings.Contains(err.Error(), AnnotationProxyMemoryRequest) || !strings.Contains(err.Error(), AnnotationProxyMemoryLimit) {
		t.Errorf("request above limit: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	bad := []func(*Config){
		func(c *Config) { c.ProxyImage = "" },
		func(c *Config) { c.TrustAnchorsPEM = "" },
		func(c *Config) { c.Sidecar = "sometimes" },
		func(c *Config) { c.LogLevel = "loud" },
		func(c *Config) { c.ProxyCPURequest = "x" },
		func(c *Config) { c.OpaquePorts = "0" },
		func(c *Config) { c.TokenExpirationSeconds = 60 },
	}
	for i, mod := range bad {
		c := testConfig()
		mod(&c)
		if _, err := injectWith(t, nil, c); !errors.Is(err, ErrConfig) {
			t.Errorf("case %d: error %v, want ErrConfig", i, err)
		}
	}
}

func TestIdentityAndServiceAccount(t *testing.T) {
	meta := metav1.ObjectMeta{}
	spec := &corev1.PodSpec{ServiceAccountName: "payments", Containers: []corev1.Container{{Name: "app"}}}
	cfg := testConfig()
	cfg.TrustDomain = "prod.example"
	if err := InjectPodSpec(&meta, spec, "billing", cfg); err != nil {
		t.Fatal(err)
	}
	if got := meta.Annotations[AnnotationIdentity]; got != "spiffe://prod.example/ns/billing/sa/payments" {
		t.Errorf("identity annotation %q", got)
	}
	if got := envOf(proxyOf(spec), "MESHLET_PROXY_IDENTITY"); got != "spiffe://prod.example/ns/$(MESHLET_PROXY_POD_NAMESPACE)/sa/$(MESHLET_PROXY_SERVICE_ACCOUNT)" {
		t.Errorf("identity env %q", got)
	}
	// Unknown namespace: no identity annotation, the env still works.
	meta = metav1.ObjectMeta{}
	spec = &corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}}
	if err := InjectPodSpec(&meta, spec, "", cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := meta.Annotations[AnnotationIdentity]; ok {
		t.Errorf("identity annotation set without a namespace: %v", meta.Annotations)
	}
}

// The init container's arguments are what `meshlet-proxy init` parses back
// into the capture settings the annotations asked for.
func TestInitArgsParseBack(t *testing.T) {
	spec, err := injectWith(t, map[string]string{
		AnnotationSkipInboundPorts:  "22,9000-9010",
		AnnotationSkipOutboundPorts: "5432",
	}, testConfig())
	if err != nil {
		t.Fatal(err)
	}
	init := spec.InitContainers[0]
	if strings.Join(init.Command, " ") != "meshlet-proxy init" {
		t.Fatalf("command %v", init.Command)
	}
	got := capture.DefaultConfig()
	var remove bool
	if err := capture.FlagSet(&got, &remove).Parse(init.Args); err != nil {
		t.Fatalf("meshlet-proxy init would refuse %v: %v", init.Args, err)
	}
	want := capture.DefaultConfig()
	want.SkipInboundPorts = capture.Ports{{First: 22, Last: 22}, {First: 9000, Last: 9010}}
	want.SkipOutboundPorts = capture.Ports{{First: 5432, Last: 5432}}
	if !reflect.DeepEqual(got, want) || remove {
		t.Errorf("init args %v parse to %+v, want %+v", init.Args, got, want)
	}
}
