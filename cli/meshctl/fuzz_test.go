package meshctl

import (
	"errors"
	"io"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzInjectManual runs the whole command (inject --manual with the real
// injector, reading stdin) on arbitrary input: it never panics, and either
// fails with nothing on stdout or prints a stream that parses.
func FuzzInjectManual(f *testing.F) {
	for _, name := range injectInputs {
		b, err := os.ReadFile("testdata/inject/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(string(b))
	}
	f.Add("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations: {config.meshlet.io/proxy-cpu-limit: '1', meshlet.io/inject: enabled}\nspec: {hostNetwork: false, containers: [{name: meshlet-proxy}]}\n")
	f.Fuzz(func(t *testing.T, in string) {
		for _, args := range [][]string{
			{"inject", "--manual", "--mesh-config", "testdata/golden/install.yaml", "-"},
			{"uninject", "-"},
		} {
			r := meshctl(t, in, args...)
			if r.code != 0 {
				if r.stdout != "" {
					t.Fatalf("%v failed but printed %q", args, r.stdout)
				}
				continue
			}
			dec := yaml.NewDecoder(strings.NewReader(r.stdout))
			for {
				var n yaml.Node
				if err := dec.Decode(&n); err != nil {
					if errors.Is(err, io.EOF) {
						break
					}
					t.Fatalf("%v output does not parse: %v\n%s", args, err, r.stdout)
				}
			}
		}
	})
}
