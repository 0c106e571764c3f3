package inject

import "strings"

// kindInfo says where a workload kind keeps its pod template and which
// apiVersions of it meshctl knows.
type kindInfo struct {
	// path of mapping keys from the object to the pod template; empty for
	// Pod, whose metadata and spec are the object's own.
	path []string
	// versions are the apiVersions with that shape. Older ones
	// (extensions/v1beta1, apps/v1beta2, batch/v1beta1) have the same pod
	// template path, so files written for old clusters still inject.
	versions []string
}

// workloads is every kind that carries a pod template.
var workloads = map[string]kindInfo{
	"Pod":                   {nil, []string{"v1"}},
	"ReplicationController": {[]string{"spec", "template"}, []string{"v1"}},
	"Deployment":            {[]string{"spec", "template"}, []string{"apps/v1", "apps/v1beta2", "apps/v1beta1", "extensions/v1beta1"}},
	"StatefulSet":           {[]string{"spec", "template"}, []string{"apps/v1", "apps/v1beta2", "apps/v1beta1"}},
	"DaemonSet":             {[]string{"spec", "template"}, []string{"apps/v1", "apps/v1beta2", "extensions/v1beta1"}},
	"ReplicaSet":            {[]string{"spec", "template"}, []string{"apps/v1", "apps/v1beta2", "extensions/v1beta1"}},
	"Job":                   {[]string{"spec", "template"}, []string{"batch/v1"}},
	"CronJob":               {[]string{"spec", "jobTemplate", "spec", "template"}, []string{"batch/v1", "batch/v1beta1"}},
}

func (k kindInfo) knows(apiVersion string) bool {
	for _, v := range k.versions {
		if v == apiVersion {
			return true
		}
	}
	return false
}

// isList reports whether kind is a list of objects under "items": the
// generic v1 List that `kubectl get -o yaml` prints, or a typed
// <Kind>List.
func isList(kind string) bool {
	return kind == "List" || (strings.HasSuffix(kind, "List") && len(kind) > len("List"))
}
