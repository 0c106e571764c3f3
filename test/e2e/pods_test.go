//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/injector"
)

// pod is a Pod object and the network namespace that plays it: the app,
// and, when the webhook injected it, the capture rules and meshlet-proxy
// run as the injected spec says.
type pod struct {
	name, namespace, sa, ip, netns string
	obj                            *corev1.Pod
	meshed                         bool
	app, proxy                     *proc
	client                         *http.Client // plain HTTP from inside the pod (captured like the app's)
	dial                           nsDialer
}

type podOptions struct {
	namespace, name, sa string
	labels              map[string]string
	annotations         map[string]string
	delay               time.Duration // of the app's HTTP and gRPC answers
	wantMeshed          bool
}

func (m *mesh) startPod(t *testing.T, o podOptions) *pod {
	t.Helper()
	ctx := context.Background()
	if o.sa == "" {
		o.sa = "default"
	}
	obj := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: o.name, Labels: o.labels, Annotations: o.annotations},
		Spec: corev1.PodSpec{
			ServiceAccountName: o.sa,
			Containers: []corev1.Container{{
				Name:  "app",
				Image: "e2e.local/app:1",
				Ports: []corev1.ContainerPort{
					{Name: "http", ContainerPort: httpPort}, {Name: "grpc", ContainerPort: grpcPort},
					{Name: "banner", ContainerPort: bannerPort}, {Name: "echo", ContainerPort: echoPort},
				},
			}},
		},
	}
	created, err := m.client.CoreV1().Pods(o.namespace).Create(ctx, obj, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("e2e: create pod %s/%s: %v", o.namespace, o.name, err)
	}
	proxyC, initC := injected(created)
	p := &pod{name: o.name, namespace: o.namespace, sa: o.sa, obj: created, meshed: proxyC != nil}
	if p.meshed != o.wantMeshed {
		t.Fatalf("e2e: pod %s/%s: injected=%v, want %v (init containers %v, containers %v)",
			o.namespace, o.name, p.meshed, o.wantMeshed, names(created.Spec.InitContainers), names(created.Spec.Containers))
	}
	if p.meshed {
		if initC == nil {
			t.Fatalf("e2e: pod %s/%s has %s but no %s", o.namespace, o.name, injector.ProxyContainerName, injector.InitContainerName)
		}
		if created.Annotations["meshlet.io/proxy-version"] == "" {
			t.Errorf("e2e: injected pod %s/%s has no meshlet.io/proxy-version annotation", o.namespace, o.name)
		}
	}

	short := strings.ReplaceAll(o.name, ".", "-")
	if len(short) > 20 {
		short = short[:20]
	}
	p.netns, p.ip = m.net.addPod(t, short, m.hosts)
	p.dial = nsDialer{path: m.net.path(p.netns)}
	p.client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: p.dial.DialContext, DisableKeepAlives: true}}

	if p.meshed {
		// meshlet-init: the capture rules, as the init container's command.
		argv := append([]string{"ip", "netns", "exec", p.netns, filepath.Join(m.bin, "meshlet-proxy")}, initC.Command[1:]...)
		argv = append(argv, initC.Args...)
		out := mustRun(t, argv...)
		if rules := mustRun(t, "ip", "netns", "exec", p.netns, "iptables-save", "-t", "nat"); !strings.Contains(rules, "MESHLET_OUTPUT") {
			t.Fatalf("e2e: %s after meshlet-init has no MESHLET_OUTPUT chain:\n%s\ninit said:\n%s", p.netns, rules, out)
		}
	}

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	env := []string{roleEnv + "=app", podEnv + "=" + o.name}
	if o.delay > 0 {
		env = append(env, delayEnv+"="+o.delay.String())
	}
	p.app = m.procs.start(t, "app-"+o.namespace+"-"+o.name, env, "ip", "netns", "exec", p.netns, self)
	m.waitDial(t, p, "127.0.0.1:"+strconv.Itoa(httpPort), p.app)

	if p.meshed {
		m.startProxy(t, p, proxyC)
	}
	m.kube.SetPodRunning(t, o.namespace, o.name, p.ip)
	m.mu.Lock()
	m.pods = append(m.pods, p)
	m.mu.Unlock()
	return p
}

func names(cs []corev1.Container) []string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return out
}

// injected finds the proxy (a native sidecar among the init containers, or
// a regular container) and meshlet-init.
func injected(p *corev1.Pod) (proxyC, initC *corev1.Container) {
	for i := range p.Spec.InitContainers {
		switch p.Spec.InitContainers[i].Name {
		case injector.ProxyContainerName:
			proxyC = &p.Spec.InitContainers[i]
		case injector.InitContainerName:
			initC = &p.Spec.InitContainers[i]
		}
	}
	for i := range p.Spec.Containers {
		if p.Spec.Containers[i].Name == injector.ProxyContainerName {
			proxyC = &p.Spec.Containers[i]
		}
	}
	return proxyC, initC
}

// startProxy runs meshlet-proxy in the pod's namespace as the injected
// container says: its args, its environment (downward-API fields and
// $(VAR) references resolved as the kubelet does), as UID 2102, with the
// projected token volume replaced by a file holding a TokenRequest token
// bound to the pod (same audience and lifetime as the projection).
func (m *mesh) startProxy(t *testing.T, p *pod, c *corev1.Container) {
	mounts := map[string]string{} // mount path in the container → local dir
	for _, vm := range c.VolumeMounts {
		local := filepath.Join(m.dir, "pods", p.namespace, p.name, vm.Name)
		if err := os.MkdirAll(local, 0o755); err != nil {
			t.Fatal(err)
		}
		mounts[vm.MountPath] = local
		for _, v := range p.obj.Spec.Volumes {
			if v.Name != vm.Name || v.Projected == nil {
				continue
			}
			for _, src := range v.Projected.Sources {
				if sat := src.ServiceAccountToken; sat != nil {
					m.writeToken(t, p, sat, filepath.Join(local, sat.Path))
				}
			}
		}
	}
	for _, d := range []string{filepath.Join(m.dir, "pods", p.namespace, p.name), filepath.Join(m.dir, "pods", p.namespace), filepath.Join(m.dir, "pods")} {
		_ = os.Chmod(d, 0o755)
	}
	env := resolveEnv(t, p.obj, c.Env)
	for i, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		for mp, local := range mounts {
			if v == mp || strings.HasPrefix(v, mp+"/") {
				env[i] = k + "=" + local + strings.TrimPrefix(v, mp)
			}
		}
	}
	if c.Command != nil && (len(c.Command) != 1 || c.Command[0] != injector.ProxyCommand) {
		t.Fatalf("e2e: proxy container command %v, want none or [%s]", c.Command, injector.ProxyCommand)
	}
	uid := strconv.Itoa(proxyUID)
	if sc := c.SecurityContext; sc == nil || sc.RunAsUser == nil || *sc.RunAsUser != proxyUID {
		t.Fatalf("e2e: proxy container does not run as UID %d: %+v", proxyUID, c.SecurityContext)
	}
	argv := append([]string{"ip", "netns", "exec", p.netns, "setpriv", "--reuid=" + uid, "--regid=" + uid, "--clear-groups",
		"--pdeathsig=KILL", "--", filepath.Join(m.bin, "meshlet-proxy")}, c.Args...)
	p.proxy = m.procs.start(t, "proxy-"+p.namespace+"-"+p.name, env, argv...)
	waitHTTP(t, p.client, "http://127.0.0.1:4191/ready", time.Minute, p.proxy)
	// ip netns exec and setpriv exec in place: the pid is the proxy's now.
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.proxy.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if rest, ok := strings.CutPrefix(line, "Uid:"); ok {
			if f := strings.Fields(rest); len(f) < 2 || f[0] != uid || f[1] != uid {
				t.Fatalf("e2e: meshlet-proxy of %s runs with %s, want UID %s", p.name, line, uid)
			}
		}
	}
}

func (m *mesh) writeToken(t *testing.T, p *pod, sat *corev1.ServiceAccountTokenProjection, path string) {
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         []string{sat.Audience},
		ExpirationSeconds: sat.ExpirationSeconds,
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Pod", APIVersion: "v1", Name: p.name, UID: p.obj.UID},
	}}
	got, err := m.client.CoreV1().ServiceAccounts(p.namespace).CreateToken(context.Background(), p.sa, tr, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("e2e: token for pod %s/%s: %v", p.namespace, p.name, err)
	}
	if err := os.WriteFile(path, []byte(got.Status.Token), 0o644); err != nil {
		t.Fatal(err)
	}
}

// resolveEnv does the kubelet's part: downward-API fields, then $(VAR)
// references to variables defined before ($$ is a literal $).
func resolveEnv(t *testing.T, p *corev1.Pod, vars []corev1.EnvVar) []string {
	seen := map[string]string{}
	var out []string
	for _, v := range vars {
		val := v.Value
		if v.ValueFrom != nil {
			f := v.ValueFrom.FieldRef
			if f == nil {
				t.Fatalf("e2e: env %s: only fieldRef is supported here", v.Name)
			}
			switch f.FieldPath {
			case "metadata.name":
				val = p.Name
			case "metadata.namespace":
				val = p.Namespace
			case "spec.serviceAccountName":
				val = p.Spec.ServiceAccountName
			default:
				t.Fatalf("e2e: env %s: field %s not supported here", v.Name, f.FieldPath)
			}
		} else {
			val = expandVars(val, seen)
		}
		seen[v.Name] = val
		out = append(out, v.Name+"="+val)
	}
	return out
}

func expandVars(s string, vars map[string]string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) {
			if s[i+1] == '$' {
				b.WriteByte('$')
				i++
				continue
			}
			if s[i+1] == '(' {
				if end := strings.IndexByte(s[i:], ')'); end > 0 {
					name := s[i+2 : i+end]
					if v, ok := vars[name]; ok {
						b.WriteString(v)
						i += end
						continue
					}
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// waitDial waits until addr accepts connections from inside the pod.
func (m *mesh) waitDial(t *testing.T, p *pod, addr string, owner *proc) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		c, err := p.dial.DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			c.Close()
			return
		}
		if owner.exited() {
			t.Fatalf("e2e: %s exited (%v):\n%s", owner.name, owner.err, owner.tail(20))
		}
		if time.Now().After(deadline) {
			t.Fatalf("e2e: %s in %s: %v", addr, p.netns, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopPod ends a pod's processes (proxy after app, as a kubelet ends
// sidecars last) and deletes its namespace early.
func (m *mesh) stopPod(p *pod) {
	p.app.stop(5 * time.Second)
	if p.proxy != nil {
		p.proxy.stop(10 * time.Second)
	}
}
