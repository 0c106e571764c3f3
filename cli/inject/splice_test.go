package inject

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// onlyAdded checks that out is in with lines added and none changed or
// removed, and returns the added lines.
func onlyAdded(t *testing.T, in, out string) []string {
	t.Helper()
	inL, outL := strings.SplitAfter(strings.TrimSuffix(in, "\n"), "\n"), strings.SplitAfter(out, "\n")
	var added []string
	i := 0
	for _, l := range outL {
		if l == "" {
			continue
		}
		if i < len(inL) && (l == inL[i] || (i == len(inL)-1 && strings.TrimSuffix(l, "\n") == inL[i])) {
			i++
			continue
		}
		added = append(added, l)
	}
	if i != len(inL) {
		t.Fatalf("input line %d (%q) is not in the output:\n%s", i+1, inL[i], out)
	}
	return added
}

func TestSpliceAddsLinesOnly(t *testing.T) {
	tests := []struct {
		name, in string
		f        PodFunc
		added    int
	}{
		{"blank lines, comments, folded scalar", `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web

# spec follows
spec:
  template:
    metadata:
      labels:
        app: "web"   # quoted

    spec:
      containers:
        - name: a
          image: b
          args:
            - >-
              folded text
              here
`, annotate, 2},
		{"no template metadata", "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  template:\n    spec:\n      containers: [{name: a, image: b}]\n", annotate, 3},
		{"annotations exist", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    a: b\n\n  labels: {x: y}\nspec:\n  containers: [{name: a, image: b}]\n", annotate, 1},
		{"crlf", "apiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: p\r\nspec:\r\n  containers:\r\n  - name: a\r\n    image: b\r\n", annotate, 2},
		{"no final newline", "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: b\nmetadata:\n  name: p", annotate, 2},
		{"sidecar into a pod without volumes", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n    containers:\n    -   name: a\n        image: b\n", sidecar, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, _ := mustTransform(t, tt.f, tt.in)
			added := onlyAdded(t, tt.in, out)
			if len(added) != tt.added {
				t.Errorf("added %d lines, want %d:\n%s", len(added), tt.added, strings.Join(added, ""))
			}
			if err := validStream([]byte(out)); err != nil {
				t.Errorf("output does not parse: %v", err)
			}
			if tt.name == "crlf" && strings.Count(out, "\n") != strings.Count(out, "\r\n") {
				t.Errorf("mixed line endings:\n%q", out)
			}
		})
	}
}

// A list that gains elements keeps its bytes too: the elements are
// inserted as lines, at the end or before the element that follows.
func TestSpliceIntoLists(t *testing.T) {
	in := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  initContainers:\n    # setup first\n    - name: setup\n      image: s\n\n  containers:\n  - name: a   # app\n    image: b\n  volumes:\n  - name: data\n    emptyDir: {}\n\n  restartPolicy: Never\n"
	out, _ := mustTransform(t, sidecar, in)
	added := onlyAdded(t, in, out)
	if len(added) != 9 {
		t.Errorf("added %d lines:\n%s", len(added), out)
	}
	if !strings.Contains(out, "  initContainers:\n    - name: proxy\n") || !strings.Contains(out, "    emptyDir: {}\n  - name: tok\n    emptyDir: {}\n\n  restartPolicy") {
		t.Errorf("elements not where they belong:\n%s", out)
	}
}

// When lines cannot simply be added (a flow-style list gains an element),
// the document is re-encoded: still correct, comments and order kept.
func TestSpliceFallsBackToEncoding(t *testing.T) {
	in := "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a   # app\n    image: b\n  volumes: [{name: data, emptyDir: {}}]\n"
	out, _ := mustTransform(t, sidecar, in)
	if !strings.Contains(out, "  - name: a # app\n") || !strings.Contains(out, "volumes: [{name: data, emptyDir: {}}, {name: tok, emptyDir: {}}]") {
		t.Errorf("re-encoded output:\n%s", out)
	}
}

// unsidecar undoes sidecar.
func unsidecar(pod *corev1.Pod) (string, error) {
	var ics []corev1.Container
	for _, c := range pod.Spec.InitContainers {
		if c.Name != "proxy" {
			ics = append(ics, c)
		}
	}
	pod.Spec.InitContainers = ics
	var vs []corev1.Volume
	for _, v := range pod.Spec.Volumes {
		if v.Name != "tok" {
			vs = append(vs, v)
		}
	}
	pod.Spec.Volumes = vs
	return "", nil
}

// TestSpliceRemovals: a sidecar added into lists that already existed
// (re-encoded, as lines cannot simply be added there) is removed again by
// deleting lines only, whatever the layout around it.
func TestSpliceRemovals(t *testing.T) {
	tests := []struct{ name, in string }{
		{"lists with elements", `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  initContainers:
  # the proxy
  - name: proxy
    image: proxy:v1

  - name: setup   # keeps
    image: setup
  containers:
  - name: a
    image: b
  volumes:
  - name: data
    emptyDir: {}
  - name: tok
    emptyDir: {}
`},
		{"proxy last, indented lists", `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  initContainers:
    - name: setup
      image: setup
    - name: proxy
      image: proxy:v1
      env:
        - name: X
          value: "1"
  containers:
    - name: a
      image: b
  volumes:
    - name: tok
      emptyDir: {}
  restartPolicy: Always
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, reps := mustTransform(t, unsidecar, tt.in)
			if len(reps) != 1 || reps[0].Result != "injected" {
				t.Fatalf("reports %v", reps)
			}
			removed := onlyAdded(t, out, tt.in) // out is in with lines removed
			if len(removed) == 0 {
				t.Fatalf("nothing removed:\n%s", out)
			}
			if strings.Contains(out, "proxy") || strings.Contains(out, "tok") {
				t.Errorf("sidecar left:\n%s", out)
			}
		})
	}
}
