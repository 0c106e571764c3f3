package injector

import (
	"encoding/json"
	"errors"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// FuzzInjectAnnotations feeds arbitrary annotation keys and values (outside
// input: whoever writes the pod) to the injector: it must never panic, fail
// only with ErrAnnotation, and when it succeeds its patch must apply and
// give the injected pod.
func FuzzInjectAnnotations(f *testing.F) {
	f.Add(AnnotationProxyCPURequest, "100m", AnnotationSkipInboundPorts, "22,80-90")
	f.Add(AnnotationProxyMemoryLimit, "1Gi", AnnotationProxyMemoryRequest, "2Gi")
	f.Add(AnnotationOpaquePorts, "", AnnotationProxyImage, "x@sha256:1")
	f.Add("a/b~c", "v", AnnotationProxyLogLevel, "trace")
	f.Add(AnnotationProxyVersionConfig, "v1", AnnotationProxyCPULimit, "1e3")
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{k1: v1, k2: v2}},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app"}}},
		}
		ops, err := Patch(pod, "ns", testConfig())
		if err != nil {
			if !errors.Is(err, ErrAnnotation) {
				t.Fatalf("error %v is not ErrAnnotation", err)
			}
			return
		}
		raw, _ := json.Marshal(pod)
		b, _ := json.Marshal(ops)
		p, err := jsonpatch.DecodePatch(b)
		if err != nil {
			t.Fatal(err)
		}
		patched, err := p.Apply(raw)
		if err != nil {
			t.Fatalf("patch does not apply: %v", err)
		}
		var got corev1.Pod
		if err := json.Unmarshal(patched, &got); err != nil {
			t.Fatal(err)
		}
		want := pod.DeepCopy()
		if err := InjectPodSpec(&want.ObjectMeta, &want.Spec, "ns", testConfig()); err != nil {
			t.Fatal(err)
		}
		// Compare after a JSON round trip: JSON turns invalid UTF-8 in
		// keys into U+FFFD, as it does on the way to the API server.
		wj, _ := json.Marshal(want)
		want = &corev1.Pod{}
		_ = json.Unmarshal(wj, want)
		if !equality.Semantic.DeepEqual(&got, want) {
			gj, _ := json.Marshal(&got)
			t.Fatalf("patched pod differs from the injected one:\n%s\n%s", gj, wj)
		}
	})
}

func BenchmarkPatch(b *testing.B) {
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Annotations: map[string]string{"team": "a"}},
		Spec: corev1.PodSpec{
			InitContainers: []corev1.Container{{Name: "setup"}},
			Containers:     []corev1.Container{{Name: "web"}, {Name: "worker"}},
			Volumes:        []corev1.Volume{{Name: "data"}},
		},
	}
	cfg := testConfig()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := PatchJSON(pod, "shop", cfg); err != nil {
			b.Fatal(err)
		}
	}
}
