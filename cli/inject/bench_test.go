package inject

import (
	"strings"
	"testing"
)

// BenchmarkTransform: a 100-document stream (50 Deployments, 50
// Services), annotate mode with splicing, and the sidecar mode.
func BenchmarkTransform(b *testing.B) {
	var sb strings.Builder
	for i := 0; i < 50; i++ {
		sb.WriteString("---\n" + deployment + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n")
	}
	in := []byte(sb.String())
	for _, bc := range []struct {
		name string
		f    PodFunc
	}{{"annotate", annotate}, {"sidecar", sidecar}} {
		b.Run(bc.name, func(b *testing.B) {
			tr := &Transformer{Pod: bc.f, Verb: "injected"}
			b.ReportAllocs()
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if _, _, err := tr.Transform("bench.yaml", in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
