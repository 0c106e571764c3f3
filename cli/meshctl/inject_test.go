package meshctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var injectInputs = []string{"app.yaml", "list.yaml", "workloads.yaml"}

func TestInjectGolden(t *testing.T) {
	for _, in := range injectInputs {
		for _, mode := range []struct{ name, flags string }{
			{"annotate", ""},
			{"manual", "--manual --mesh-config testdata/golden/install.yaml"},
		} {
			t.Run(mode.name+"/"+in, func(t *testing.T) {
				r := meshctl(t, "", "inject "+mode.flags+" testdata/inject/"+in)
				if r.code != 0 {
					t.Fatalf("exit %d: %s", r.code, r.stderr)
				}
				base := strings.TrimSuffix(in, ".yaml")
				golden(t, "inject-"+mode.name+"-"+base+".yaml", r.stdout)
				golden(t, "inject-"+mode.name+"-"+base+".stderr", r.stderr)
				decodeAll(t, r.stdout) // strict: every field is a real one
			})
		}
	}
}

// TestUninjectUndoesInject: uninject(inject(x)) is x, byte for byte, in
// both modes (inject only adds lines, uninject only deletes them), and
// injecting twice is injecting once.
func TestUninjectUndoesInject(t *testing.T) {
	for _, in := range injectInputs {
		for _, flags := range []string{"", "--manual --mesh-config testdata/golden/install.yaml"} {
			orig, err := os.ReadFile(filepath.Join("testdata", "inject", in))
			if err != nil {
				t.Fatal(err)
			}
			once := meshctl(t, "", "inject "+flags+" testdata/inject/"+in)
			twice := meshctl(t, once.stdout, "inject "+flags+" -")
			if twice.code != 0 || twice.stdout != once.stdout {
				t.Errorf("%s %q: injecting twice changed the output:\n%s", in, flags, diff(once.stdout, twice.stdout))
			}
			back := meshctl(t, once.stdout, "uninject -")
			if back.code != 0 {
				t.Fatalf("uninject: %s", back.stderr)
			}
			if back.stdout != string(orig) {
				t.Errorf("%s %q: uninject(inject(x)) != x:\n%s", in, flags, diff(string(orig), back.stdout))
			}
		}
	}
}

func docs(t *testing.T, s string) []string {
	t.Helper()
	var out []string
	for _, d := range strings.Split("\n"+s, "\n---\n") {
		if strings.TrimSpace(d) == "" {
			continue
		}
		j, err := yaml.YAMLToJSON([]byte(d))
		if err != nil {
			t.Fatalf("%v\n%s", err, d)
		}
		out = append(out, string(j))
	}
	return out
}

func TestInjectInputs(t *testing.T) {
	dir := t.TempDir()
	write := func(name, data string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pod := func(name string) string {
		return "apiVersion: v1\nkind: Pod\nmetadata:\n  name: " + name + "\nspec:\n  containers:\n  - name: a\n    image: b\n"
	}
	write("b.yaml", pod("b"))
	write("a.yml", pod("a"))
	write("c.json", `{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "c"}, "spec": {"containers": [{"name": "a", "image": "b"}]}}`)
	write("notes.txt", "not yaml: [")
	write("sub/d.yaml", pod("d"))

	r := meshctl(t, pod("stdin"), "inject", dir, "-")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	want := "pod/a injected\npod/b injected\npod/c injected\npod/stdin injected\n"
	if r.stderr != want {
		t.Errorf("stderr:\n%s\nwant:\n%s", r.stderr, want)
	}
	if n := len(docs(t, r.stdout)); n != 4 {
		t.Errorf("%d documents out, want 4:\n%s", n, r.stdout)
	}
	r = meshctl(t, "", "inject", "-R", dir)
	if !strings.Contains(r.stderr, "pod/d injected") {
		t.Errorf("-R did not read sub/: %s", r.stderr)
	}
}

func TestInjectBadInputWritesNothing(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: a, image: b}]}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, stdin, want string }{
		{"yaml syntax", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: v1\nkind: Pod\n  bad: indent\n",
			"<stdin>: document 2, line 7: yaml: line 7: mapping values are not allowed"},
		{"unknown apiVersion", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\n---\napiVersion: apps/v2\nkind: Deployment\nmetadata: {name: d}\n",
			`<stdin>: document 2, line 5 (deployment/d): unknown apiVersion "apps/v2" for kind Deployment`},
		{"invalid override annotation", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    config.meshlet.io/proxy-cpu-limit: lots\nspec: {containers: [{name: a, image: b}]}\n",
			"<stdin>: document 1, line 1 (pod/p):"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, flags := range []string{"inject", "inject --manual --mesh-config testdata/golden/install.yaml", "uninject"} {
				if tt.name == "invalid override annotation" && !strings.Contains(flags, "manual") {
					continue
				}
				// The good file first: its output must not leak either.
				r := meshctl(t, tt.stdin, strings.Fields(flags+" "+good+" -")...)
				if r.code == 0 || r.stdout != "" {
					t.Fatalf("%s: exit %d, stdout %q; want failure and no output", flags, r.code, r.stdout)
				}
				if !strings.Contains(r.stderr, tt.want) {
					t.Errorf("%s: stderr %q lacks %q", flags, r.stderr, tt.want)
				}
			}
		})
	}
	r := meshctl(t, "", "inject /does/not/exist.yaml")
	if r.code == 0 || r.stdout != "" || !strings.Contains(r.stderr, "/does/not/exist.yaml") {
		t.Errorf("missing file: %+v", r)
	}
	r = meshctl(t, "", "inject --manual --mesh-config testdata/inject/app.yaml -")
	if r.code == 0 || !strings.Contains(r.stderr, "has no ConfigMap meshlet-config") {
		t.Errorf("mesh config without ConfigMap: %+v", r)
	}
}
