package promhist

import (
	"math"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
)

func series(n uint64, buckets map[float64]uint64) *dto.Histogram {
	h := &dto.Histogram{SampleCount: proto.Uint64(n)}
	for _, le := range []float64{1, 10, 100, math.Inf(1)} {
		if c, ok := buckets[le]; ok {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(le), CumulativeCount: proto.Uint64(c)})
		}
	}
	return h
}

func TestQuantile(t *testing.T) {
	// 100 samples: 50 at ≤1ms, 40 in (1,10], 10 in (10,100].
	h := Hist{N: 100, Buckets: map[float64]float64{1: 50, 10: 90, 100: 100, math.Inf(1): 100}}
	for _, c := range []struct{ q, want float64 }{{0.5, 1}, {0.7, 5.5}, {0.99, 91}} {
		if got := h.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if !math.IsNaN((Hist{}).Quantile(0.5)) {
		t.Error("quantile of no samples should be NaN")
	}
	// Above the highest finite bound: that bound.
	top := Hist{N: 10, Buckets: map[float64]float64{1: 0, 5: 0, math.Inf(1): 10}}
	if got := top.Quantile(0.99); got != 5 {
		t.Errorf("all in +Inf: %v, want 5", got)
	}
}

// TestAddCountsInfOnce: the text format lists the +Inf bucket besides the
// sample count; it must not count twice.
func TestAddCountsInfOnce(t *testing.T) {
	var h Hist
	h.Add(series(10, map[float64]uint64{1: 4, 10: 9, math.Inf(1): 10}))
	h.Add(series(5, map[float64]uint64{1: 5, 10: 5}))
	if h.N != 15 || h.Buckets[math.Inf(1)] != 15 || h.Buckets[1] != 9 || h.Buckets[10] != 14 {
		t.Fatalf("%+v", h)
	}
	var m Hist
	m.Merge(h)
	m.Merge(h)
	if m.N != 30 || m.Buckets[10] != 28 {
		t.Fatalf("merged: %+v", m)
	}
	d := m.Sub(h)
	if d.N != 15 || d.Buckets[1] != 9 || d.Buckets[math.Inf(1)] != 15 {
		t.Fatalf("sub: %+v", d)
	}
	if empty := h.Sub(Hist{}); empty.N != h.N || empty.Buckets[10] != 14 {
		t.Fatalf("minus nothing: %+v", empty)
	}
}
