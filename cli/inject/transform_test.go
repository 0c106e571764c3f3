package inject

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// annotate is a PodFunc like meshctl's default mode, without the injector.
func annotate(pod *corev1.Pod) (string, error) {
	if pod.Spec.HostNetwork {
		return "host-network", nil
	}
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations["meshlet.io/inject"] = "enabled"
	return "", nil
}

// sidecar adds a container in front and a volume, like --manual.
func sidecar(pod *corev1.Pod) (string, error) {
	pod.Spec.InitContainers = append([]corev1.Container{{Name: "proxy", Image: "proxy:v1",
		Env: []corev1.EnvVar{{Name: "PORT", Value: "4143"}, {Name: "ON", Value: "true"}}}}, pod.Spec.InitContainers...)
	pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{Name: "tok", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
	return "", nil
}

func mustTransform(t *testing.T, f PodFunc, in string) (string, []Report) {
	t.Helper()
	out, reps, err := (&Transformer{Pod: f, Verb: "injected"}).Transform("in.yaml", []byte(in))
	if err != nil {
		t.Fatalf("Transform: %v", err)
	}
	return string(out), reps
}

const deployment = `# The shop's web tier.
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web # front end
  namespace: shop
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels:
        app: web
    spec:
      # Port 8080 is the app's.
      containers:
      - name: web
        image: "nginx:1.27"
        ports:
        - containerPort: 8080
        args: ['--port', "8080"]
`

func TestAnnotatePreservesEverythingElse(t *testing.T) {
	out, reps := mustTransform(t, annotate, deployment)
	want := strings.Replace(deployment, "        app: web\n    spec:", "        app: web\n      annotations:\n        meshlet.io/inject: enabled\n    spec:", 1)
	if out != want {
		t.Errorf("output differs\n--- got\n%s\n--- want\n%s", out, want)
	}
	if len(reps) != 1 || reps[0].String() != "deployment/web injected" || reps[0].Namespace != "shop" {
		t.Errorf("reports = %v", reps)
	}
}

func TestUnchangedDocumentsAreByteForByte(t *testing.T) {
	in := "---\n# a service\napiVersion: v1\nkind: Service\nmetadata: {name: web}   # flow style kept\nspec:\n    ports: [ {port: 80} ]\n" +
		"---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: host\nspec:\n  template:\n    spec:\n      hostNetwork: true\n      containers: [{name: a, image: b}]\n" +
		"---\n# only a comment\n"
	out, reps := mustTransform(t, annotate, in)
	if out != in {
		t.Errorf("unchanged stream was rewritten:\n%s", out)
	}
	got := []string{}
	for _, r := range reps {
		got = append(got, r.String())
	}
	want := "service/web skipped: not a workload|deployment/host skipped: host-network"
	if strings.Join(got, "|") != want {
		t.Errorf("reports = %q, want %q", strings.Join(got, "|"), want)
	}
}

func TestEveryWorkloadKind(t *testing.T) {
	tests := []struct {
		name, doc string
		// path to the pod template's annotations in the output
		path []string
	}{
		{"pod", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n", []string{"metadata"}},
		{"rc", "apiVersion: v1\nkind: ReplicationController\nmetadata: {name: p}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n", []string{"spec", "template", "metadata"}},
		{"deployment", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: p}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n", []string{"spec", "template", "metadata"}},
		{"statefulset", "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: p}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n", []string{"spec", "template", "metadata"}},
		{"daemonset", "apiVersion: apps/v1\nkind: DaemonSet\nmetadata: {name: p}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n", []string{"spec", "template", "metadata"}},
		{"replicaset", "apiVersion: apps/v1\nkind: ReplicaSet\nmetadata: {name: p}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n", []string{"spec", "template", "metadata"}},
		{"job", "apiVersion: batch/v1\nkind: Job\nmetadata: {name: p}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n", []string{"spec", "template", "metadata"}},
		{"cronjob", "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: p}\nspec: {schedule: '* * * * *', jobTemplate: {spec: {template: {spec: {containers: [{name: a, image: b}]}}}}}\n", []string{"spec", "jobTemplate", "spec", "template", "metadata"}},
		{"legacy deployment", "apiVersion: extensions/v1beta1\nkind: Deployment\nmetadata: {name: p}\nspec: {template: {spec: {containers: [{name: a, image: b}]}}}\n", []string{"spec", "template", "metadata"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, reps := mustTransform(t, annotate, tt.doc)
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(out), &doc); err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			n := doc.Content[0]
			for _, k := range tt.path {
				n = get(n, k)
				if n == nil {
					t.Fatalf("no %v in output:\n%s", tt.path, out)
				}
			}
			if v := scalar(get(get(n, "annotations"), "meshlet.io/inject"), ""); v != "enabled" {
				t.Errorf("annotation = %q in\n%s", v, out)
			}
			if len(reps) != 1 || !strings.HasSuffix(reps[0].String(), "/p injected") {
				t.Errorf("reports = %v", reps)
			}
		})
	}
}

func TestSidecarMergeKeepsUserContainers(t *testing.T) {
	in := `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  containers:
    - name: app # the app
      image: app:1
      unknownField: kept    # a field the typed model does not know
  volumes:
    - name: data
      emptyDir: {}
`
	out, _ := mustTransform(t, sidecar, in)
	for _, want := range []string{
		"    - name: app # the app\n",
		"      unknownField: kept    # a field the typed model does not know\n",
		"  initContainers:\n    - name: proxy\n",
		"value: \"4143\"", "value: \"true\"",
		"    - name: data\n      emptyDir: {}\n    - name: tok\n      emptyDir: {}\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"creationTimestamp", "resources: {}"} {
		if strings.Contains(out, bad) {
			t.Errorf("output has round-trip artefact %q:\n%s", bad, out)
		}
	}
	// Four-space indent and indented lists are the author's style.
	if !strings.Contains(out, "spec:\n  initContainers:\n    - name") {
		t.Errorf("indentation style lost:\n%s", out)
	}
}

func TestLists(t *testing.T) {
	in := `apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: Service
  metadata: {name: web}
- apiVersion: batch/v1
  kind: CronJob
  metadata: {name: nightly}
  spec:
    schedule: "0 0 * * *"
    jobTemplate:
      spec:
        template:
          spec:
            containers: [{name: job, image: busybox}]
---
apiVersion: apps/v1
kind: DeploymentList
items:
- metadata: {name: typed}
  spec:
    template:
      spec:
        containers: [{name: a, image: b}]
`
	out, reps := mustTransform(t, annotate, in)
	var got []string
	for _, r := range reps {
		got = append(got, r.String())
	}
	want := "service/web skipped: not a workload|cronjob/nightly injected|deployment/typed injected"
	if strings.Join(got, "|") != want {
		t.Errorf("reports = %q, want %q", strings.Join(got, "|"), want)
	}
	if strings.Count(out, "meshlet.io/inject: enabled") != 2 {
		t.Errorf("want 2 annotations:\n%s", out)
	}
}

func TestBadInput(t *testing.T) {
	good := "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n"
	tests := []struct {
		name, in string
		// want is in the error message
		want string
		doc  int
		line int
	}{
		// The yaml library reports an unclosed flow list one line above
		// the "[" (its parser's marks are 0-based); the line is its.
		{"syntax", good + "apiVersion: v1\nkind: Pod\nmetadata:\n  name: [x\n", "did not find expected", 2, 7},
		{"scanner", good + "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\n   bad: indent\n", "mapping values are not allowed", 2, 9},
		{"unknown apiVersion", good + "kind: Deployment\napiVersion: apps/v9\nmetadata: {name: d}\n", `unknown apiVersion "apps/v9" for kind Deployment`, 2, 6},
		{"scalar document", good + "just a string\n", "not a Kubernetes object: a YAML scalar", 2, 5},
		{"no kind", good + "apiVersion: v1\nmetadata: {name: x}\n", "no kind", 2, 5},
		{"no apiVersion", good + "kind: Pod\n", "Pod has no apiVersion", 2, 5},
		{"items not a list", good + "apiVersion: v1\nkind: List\nitems: {a: b}\n", "items is not a list", 2, 7},
		{"no template", good + "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}\n", "has no spec.template mapping", 2, 8},
		{"bad template", good + "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: 3}\n", "pod template", 2, 5},
		{"duplicate key", good + "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  hostNetwork: true\n  hostNetwork: false\n", "already defined", 2, 5},
		{"bad item in list", good + "apiVersion: v1\nkind: List\nitems:\n- apiVersion: apps/v1\n  kind: StatefulSet\n  metadata: {name: s}\n", "has no spec.template", 2, 8},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, reps, err := (&Transformer{Pod: annotate, Verb: "injected"}).Transform("bad.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("no error; output:\n%s", out)
			}
			if out != nil || reps != nil {
				t.Errorf("partial output on error: %q %v", out, reps)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			if !strings.Contains(err.Error(), tt.want) || e.Source != "bad.yaml" || e.Doc != tt.doc || e.Line != tt.line {
				t.Errorf("error = %q (doc %d, line %d), want %q at doc %d line %d", err, e.Doc, e.Line, tt.want, tt.doc, tt.line)
			}
		})
	}
}

func TestPodFuncErrorNamesTheObject(t *testing.T) {
	fail := func(*corev1.Pod) (string, error) {
		return "", errors.New("invalid annotation config.meshlet.io/proxy-cpu-limit")
	}
	_, _, err := (&Transformer{Pod: fail, Verb: "injected"}).Transform("f.yaml", []byte(deployment))
	if err == nil || !strings.Contains(err.Error(), "f.yaml: document 1, line 11 (deployment/web): invalid annotation") {
		t.Errorf("err = %v", err)
	}
}

func TestStreamEdges(t *testing.T) {
	tests := []struct{ name, in string }{
		{"crlf", "apiVersion: v1\r\nkind: Pod\r\nmetadata:\r\n  name: p\r\nspec:\r\n  containers: [{name: a, image: b}]\r\n---\r\napiVersion: v1\r\nkind: Service\r\nmetadata: {name: s}\r\n"},
		{"directive", "%YAML 1.1\n---\napiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n"},
		{"document end", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n...\n---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n"},
		{"block scalar with dashes", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: a\n    image: b\n    args:\n    - |\n      ----- not a marker\n       --- indented\n"},
		{"json", `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "a", "image": "b"}]}}`},
		{"empty", ""},
		{"no trailing newline", "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, reps := mustTransform(t, annotate, tt.in)
			if err := validStream([]byte(out)); err != nil {
				t.Fatalf("output does not parse: %v\n%s", err, out)
			}
			injected := 0
			for _, r := range reps {
				if strings.HasSuffix(r.String(), " injected") {
					injected++
				}
			}
			if tt.in != "" && injected != 1 {
				t.Errorf("injected %d pods, want 1: %v\n%s", injected, reps, out)
			}
			if tt.in != "" && !strings.Contains(out, "meshlet.io/inject") {
				t.Errorf("no annotation in\n%s", out)
			}
		})
	}
}

// FuzzInject: whatever the input, Transform does not panic, and either
// fails with an *Error and no output, or returns a parseable stream.
func FuzzInject(f *testing.F) {
	f.Add(deployment)
	f.Add("apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Pod\n  metadata: {name: p}\n  spec: {containers: [{name: a}]}\n")
	f.Add("---\n%YAML 1.2\n---\na: &x [1, *x]\n...\n")
	f.Add("apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec: {jobTemplate: {spec: {template: {metadata: {annotations: null}, spec: {}}}}}\n")
	f.Add("apiVersion: v1\nkind: Pod\nmetadata: {name: p, <<: {a: b}}\nspec: {containers: [{name: a, image: b, env: [{name: X}]}], volumes: [{name: v}]}\n")
	f.Add("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  initContainers:\n  - name: proxy\n    image: x\n  volumes:\n  - name: tok\n")
	trs := []*Transformer{
		{Pod: sidecar, Verb: "injected"}, {Pod: unsidecar, Verb: "uninjected"}, {Pod: annotate, Verb: "annotated"},
	}
	f.Fuzz(func(t *testing.T, in string) {
		for _, tr := range trs {
			out, _, err := tr.Transform("fuzz.yaml", []byte(in))
			if err != nil {
				var e *Error
				if !errors.As(err, &e) {
					t.Fatalf("error %T is not *Error: %v", err, err)
				}
				if out != nil {
					t.Fatalf("output on error")
				}
				continue
			}
			if err := validStream(out); err != nil {
				t.Fatalf("%s: output does not parse: %v\n%q", tr.Verb, err, out)
			}
		}
	})
}
