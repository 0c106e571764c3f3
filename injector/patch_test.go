package injector

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/yaml"
)

var patchCases = []struct {
	pod  string
	mode SidecarMode
}{
	{"minimal.yaml", SidecarNative},
	{"minimal.yaml", SidecarContainer},
	{"existing-init-volumes-annotations.yaml", SidecarNative},
	{"existing-init-volumes-annotations.yaml", SidecarContainer},
	{"empty-collections.yaml", SidecarNative},
	{"overrides.yaml", SidecarNative},
}

// TestPatchGolden checks the patch against golden files, and that applying
// it (RFC 6902, with the library the API server uses) to the original JSON
// gives exactly the pod InjectPodSpec makes.
func TestPatchGolden(t *testing.T) {
	for _, tc := range patchCases {
		name := strings.TrimSuffix(tc.pod, ".yaml") + "." + string(tc.mode)
		t.Run(name, func(t *testing.T) {
			pod, raw := loadPod(t, tc.pod)
			cfg := testConfig()
			cfg.Sidecar = tc.mode
			ops, err := Patch(pod, pod.Namespace, cfg)
			if err != nil {
				t.Fatal(err)
			}
			pretty, _ := json.MarshalIndent(ops, "", "  ")
			golden(t, name+".patch.json", append(pretty, '\n'))

			want := pod.DeepCopy()
			if err := InjectPodSpec(&want.ObjectMeta, &want.Spec, pod.Namespace, cfg); err != nil {
				t.Fatal(err)
			}
			wantYAML, _ := yaml.Marshal(want)
			golden(t, name+".pod.yaml", wantYAML)

			patchJSON, _ := json.Marshal(ops)
			p, err := jsonpatch.DecodePatch(patchJSON)
			if err != nil {
				t.Fatalf("decode patch: %v", err)
			}
			patched, err := p.Apply(raw)
			if err != nil {
				t.Fatalf("apply patch to the original pod: %v", err)
			}
			var got corev1.Pod
			if err := json.Unmarshal(patched, &got); err != nil {
				t.Fatal(err)
			}
			if !equality.Semantic.DeepEqual(&got, want) {
				gy, _ := yaml.Marshal(&got)
				t.Errorf("patched pod differs from InjectPodSpec's:\n--- patched\n%s\n--- injected\n%s", gy, wantYAML)
			}
		})
	}
}

func TestPatchOfInjectedPodIsEmpty(t *testing.T) {
	for _, mode := range []SidecarMode{SidecarNative, SidecarContainer} {
		pod, _ := loadPod(t, "existing-init-volumes-annotations.yaml")
		cfg := testConfig()
		cfg.Sidecar = mode
		if err := InjectPodSpec(&pod.ObjectMeta, &pod.Spec, pod.Namespace, cfg); err != nil {
			t.Fatal(err)
		}
		once := pod.DeepCopy()
		if err := InjectPodSpec(&pod.ObjectMeta, &pod.Spec, pod.Namespace, cfg); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(once, pod) {
			t.Errorf("%s: injecting an injected pod changed it", mode)
		}
		ops, err := Patch(pod, pod.Namespace, cfg)
		if err != nil || len(ops) != 0 {
			t.Errorf("%s: patch of an injected pod = %v, %v; want none", mode, ops, err)
		}
		if b, err := PatchJSON(pod, pod.Namespace, cfg); b != nil || err != nil {
			t.Errorf("%s: PatchJSON of an injected pod = %s, %v", mode, b, err)
		}
	}
}

func TestUninjectRestoresThePod(t *testing.T) {
	for _, tc := range patchCases {
		pod, _ := loadPod(t, tc.pod)
		orig := pod.DeepCopy()
		cfg := testConfig()
		cfg.Sidecar = tc.mode
		if err := InjectPodSpec(&pod.ObjectMeta, &pod.Spec, pod.Namespace, cfg); err != nil {
			t.Fatal(err)
		}
		if !Uninject(&pod.ObjectMeta, &pod.Spec) {
			t.Errorf("%s: Uninject reported no change on an injected pod", tc.pod)
		}
		if !equality.Semantic.DeepEqual(orig, pod) {
			a, _ := yaml.Marshal(orig)
			b, _ := yaml.Marshal(pod)
			t.Errorf("%s/%s: uninject didn't restore the pod:\n--- original\n%s\n--- uninjected\n%s", tc.pod, tc.mode, a, b)
		}
		if Uninject(&pod.ObjectMeta, &pod.Spec) {
			t.Errorf("%s: second Uninject reported a change", tc.pod)
		}
	}
}

func TestEscapePointer(t *testing.T) {
	for in, want := range map[string]string{
		"meshlet.io/identity": "meshlet.io~1identity",
		"a~b/c":               "a~0b~1c",
		"plain":               "plain",
		"~1":                  "~01",
	} {
		if got := EscapePointer(in); got != want {
			t.Errorf("EscapePointer(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestListOpsFallsBackToReplace(t *testing.T) {
	before := []corev1.Volume{{Name: "a"}, {Name: "b"}}
	after := []corev1.Volume{{Name: "b"}, {Name: "a"}} // not an insertion
	ops := listOps("/spec/volumes", before, after, volumeName)
	if len(ops) != 1 || ops[0].Op != "replace" {
		t.Errorf("reordered list gave %+v, want one replace", ops)
	}
	if ops := listOps("/spec/volumes", before, before, volumeName); ops != nil {
		t.Errorf("unchanged list gave %+v", ops)
	}
}
