package inject

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestMetricsCountDocuments(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	tr := &Transformer{Pod: annotate, Verb: "injected", Metrics: m}
	in := deployment + "---\napiVersion: v1\nkind: Service\nmetadata: {name: s}\n" +
		"---\napiVersion: v1\nkind: Pod\nmetadata: {name: h}\nspec: {hostNetwork: true, containers: [{name: a}]}\n"
	if _, _, err := tr.Transform("a.yaml", []byte(in)); err != nil {
		t.Fatal(err)
	}
	// Injecting the output again changes nothing.
	once, _, err := tr.Transform("a.yaml", []byte(deployment))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Transform("once.yaml", once); err != nil {
		t.Fatal(err)
	}
	if _, _, err := tr.Transform("b.yaml", []byte("kind: [\n")); err == nil {
		t.Fatal("bad input accepted")
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "meshlet_meshctl_inject_objects_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
		}
	}
	want := map[string]float64{"changed": 2, "unchanged": 1, "passthrough": 1, "invalid": 1, "skipped": 1}
	if len(got) != len(want) {
		t.Errorf("series %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
}
