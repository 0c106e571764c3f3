package main

import (
	"context"
	"math"
	"slices"
	"testing"
	"time"
)

// TestSpansQuantile checks the quantile of a fortio-shaped histogram
// against fortio's own formula (linear within the bucket that holds it),
// including across the empty range between two buckets.
func TestSpansQuantile(t *testing.T) {
	s := spans{}
	s.add(0.1, 0.2, 50)
	s.add(0.2, 0.3, 45)
	s.add(2, 2.5, 5) // fortio leaves the empty buckets out
	for _, c := range []struct{ q, want float64 }{
		{0.5, 0.2},           // the end of the first bucket
		{0.99, 2.4},          // 2 + (99-95)/5 × 0.5
		{0.9, 0.2 + 40/450.}, // 0.2 + (90-50)/45 × 0.1
	} {
		if got := s.quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	if got := (spans{}).quantile(0.99); !math.IsNaN(got) {
		t.Errorf("empty: %v, want NaN", got)
	}
}

// TestSpansMerge adds two runs whose first buckets differ (fortio starts
// the first at the run's minimum) and checks the counts add up.
func TestSpansMerge(t *testing.T) {
	a, b := spans{}, spans{}
	a.add(0.15, 0.2, 90)
	a.add(1, 2, 10)
	b.add(0.12, 0.2, 90)
	b.add(3, 4, 10)
	a.merge(b)
	// 200 requests: 180 below 0.2 ms, 10 in (1,2], 10 in (3,4].
	if got, want := a.quantile(0.95), 2.0; math.Abs(got-want) > 1e-9 {
		t.Errorf("p95 = %v, want %v", got, want)
	}
	if got, want := a.quantile(0.99), 3.8; math.Abs(got-want) > 1e-9 {
		t.Errorf("p99 = %v, want %v", got, want)
	}
}

// TestSpansOf checks the builtin loader's 10 µs buckets against the exact
// quantiles of the raw latencies.
func TestSpansOf(t *testing.T) {
	var lat []time.Duration
	for i := 1; i <= 1000; i++ {
		lat = append(lat, time.Duration(i)*time.Microsecond)
	}
	lat = append(lat, 50*time.Millisecond) // one far outlier
	s := spansOf(lat)
	for _, c := range []struct{ q, want float64 }{{0.5, 0.5}, {0.99, 0.991}} {
		if got := s.quantile(c.q); math.Abs(got-c.want) > 0.01 {
			t.Errorf("quantile(%v) = %.4f ms, want %.3f ± 0.01", c.q, got, c.want)
		}
	}
}

// script is a loader that answers each slice from a list and records
// which URL it was sent to.
type script struct {
	urls *[]string
	p99  map[string][]float64 // per URL, the p99 (ms) of its successive slices
}

func (s script) fixed(_ context.Context, url string, _ int, d time.Duration, _ int) (*result, error) {
	*s.urls = append(*s.urls, url)
	r := &result{spans: spans{}}
	if d == time.Second { // warm-up
		return r, nil
	}
	if url == "m" && len(s.p99[url]) == 1 {
		r.failed = 2 // the second slice of the path
	}
	v := s.p99[url][0]
	s.p99[url] = s.p99[url][1:]
	r.spans.add(0.1, 0.2, 98)
	r.spans.add(v-0.1, v, 2) // p99 = v - 0.05
	return r, nil
}

func (s script) max(context.Context, string, time.Duration, int) (*result, error) { return nil, nil }

// TestPairOrder checks that direct and the path take turns (direct first
// in odd pairs), and that each pair's +p99 and the merged figures come
// from the right slices.
func TestPairOrder(t *testing.T) {
	var urls []string
	ld := script{urls: &urls, p99: map[string][]float64{
		"d": {1.05, 1.05, 3.05},
		"m": {2.05, 4.05, 4.05},
	}}
	c := config{rate: 1000, slice: 5 * time.Second, pairs: 3}
	p, err := pairWith(context.Background(), c, ld, "h2c", target{key: "direct", url: "d"}, target{key: "mesh", name: "mesh", url: "m"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"d", "m", "d", "m", "m", "d", "d", "m"}; !slices.Equal(urls, want) {
		t.Errorf("order %v, want %v (warm-ups, then direct first in odd pairs)", urls, want)
	}
	if p.kept != 3 || p.tried != 3 || p.failed != 2 {
		t.Errorf("kept %d of %d with %d failed, want 3 of 3 with 2", p.kept, p.tried, p.failed)
	}
	if want := []float64{1, 3, 1}; !slices.EqualFunc(p.add99, want, func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }) {
		t.Errorf("per pair +p99 %v, want %v", p.add99, want)
	}
	if got, want := median(p.add99), 1.0; got != want {
		t.Errorf("median %v, want %v", got, want)
	}
	// Merged: 300 requests; rank 297 is the first of the 4 in (3.95, 4.05].
	if got, want := p.via.quantile(0.99), 3.975; math.Abs(got-want) > 1e-9 {
		t.Errorf("merged p99 of the path %v, want %v", got, want)
	}
}
