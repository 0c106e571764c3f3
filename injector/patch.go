package injector

import (
	"encoding/json"
	"reflect"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// JSONPatchOp is one RFC 6902 operation.
type JSONPatchOp struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// EscapePointer escapes a JSON Pointer token (RFC 6901): "~" → "~0", "/" →
// "~1". Annotation keys such as "meshlet.io/identity" need it.
func EscapePointer(token string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(token)
}

// Patch returns the JSON Patch that injects pod (in namespace) as the
// webhook sends it: applied to the pod's JSON it gives exactly what
// InjectPodSpec makes of the pod. An already-injected pod gives no
// operations. pod is not modified.
//
// The operations only insert: annotations are added one by one (or as a
// whole map when the pod has none: "add" to a member of a missing object
// fails), containers and volumes are inserted at their index (or added as a
// whole list when the pod has none), so concurrent mutations by other
// webhooks of unrelated fields survive.
func Patch(pod *corev1.Pod, namespace string, cfg Config) ([]JSONPatchOp, error) {
	out := pod.DeepCopy()
	if err := InjectPodSpec(&out.ObjectMeta, &out.Spec, namespace, cfg); err != nil {
		return nil, err
	}
	var ops []JSONPatchOp
	ops = append(ops, mapOps("/metadata/annotations", pod.Annotations, out.Annotations)...)
	ops = append(ops, listOps("/spec/initContainers", pod.Spec.InitContainers, out.Spec.InitContainers, containerName)...)
	ops = append(ops, listOps("/spec/containers", pod.Spec.Containers, out.Spec.Containers, containerName)...)
	ops = append(ops, listOps("/spec/volumes", pod.Spec.Volumes, out.Spec.Volumes, volumeName)...)
	return ops, nil
}

// PatchJSON is Patch encoded for an AdmissionResponse; nil when there is
// nothing to change.
func PatchJSON(pod *corev1.Pod, namespace string, cfg Config) ([]byte, error) {
	ops, err := Patch(pod, namespace, cfg)
	if err != nil || len(ops) == 0 {
		return nil, err
	}
	return json.Marshal(ops)
}

func containerName(c corev1.Container) string { return c.Name }
func volumeName(v corev1.Volume) string       { return v.Name }

// mapOps adds the keys of after that are new or changed; keys are never
// removed by injection.
func mapOps(path string, before, after map[string]string) []JSONPatchOp {
	if len(after) == 0 {
		return nil
	}
	if len(before) == 0 {
		return []JSONPatchOp{{Op: "add", Path: path, Value: after}}
	}
	keys := make([]string, 0, len(after))
	for k, v := range after {
		if old, ok := before[k]; !ok || old != v {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	ops := make([]JSONPatchOp, 0, len(keys))
	for _, k := range keys {
		// "add" on an existing member replaces it (RFC 6902 4.1).
		ops = append(ops, JSONPatchOp{Op: "add", Path: path + "/" + EscapePointer(k), Value: after[k]})
	}
	return ops
}

// listOps turns "after is before with items inserted" into index inserts,
// applied in order. If after isn't such an insertion (it always is for
// InjectPodSpec), it replaces the whole list rather than risk a wrong patch.
func listOps[T any](path string, before, after []T, name func(T) string) []JSONPatchOp {
	if len(after) == len(before) && reflect.DeepEqual(before, after) {
		return nil
	}
	if len(before) == 0 {
		return []JSONPatchOp{{Op: "add", Path: path, Value: after}}
	}
	var ops []JSONPatchOp
	j := 0
	for i, item := range after {
		if j < len(before) && name(before[j]) == name(item) {
			if !reflect.DeepEqual(before[j], item) {
				return []JSONPatchOp{{Op: "replace", Path: path, Value: after}}
			}
			j++
			continue
		}
		ops = append(ops, JSONPatchOp{Op: "add", Path: path + "/" + strconv.Itoa(i), Value: item})
	}
	if j != len(before) {
		return []JSONPatchOp{{Op: "replace", Path: path, Value: after}}
	}
	return ops
}
