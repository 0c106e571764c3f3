package main

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/meshlet/meshlet/internal/promhist"
)

// spans is a latency histogram in milliseconds as a loader reports it: the
// number of requests in each interval (start, end]. The intervals of two
// runs of one loader coincide (fortio's buckets are fixed, the builtin
// loader's are 10 µs wide), so histograms of several runs add up.
type spans map[[2]float64]int64

func (s spans) add(start, end float64, n int64) { s[[2]float64{start, end}] += n }

func (s spans) merge(o spans) {
	for k, n := range o {
		s[k] += n
	}
}

// spansOf buckets raw latencies into 10 µs intervals.
func spansOf(lat []time.Duration) spans {
	s := spans{}
	for _, d := range lat {
		lo := math.Floor(float64(d)/1e4) / 100 // ms, down to 10 µs
		s.add(lo, lo+0.01, 1)
	}
	return s
}

// quantile estimates the q-quantile (ms) as fortio and Prometheus do:
// linearly within the interval that holds it. NaN when s is empty.
func (s spans) quantile(q float64) float64 {
	// As a cumulative histogram: at every interval's start and end, the
	// requests in the intervals that end there or before.
	type span struct {
		end float64
		n   int64
	}
	var all []span
	h := promhist.Hist{Buckets: map[float64]float64{}}
	for k, n := range s {
		all = append(all, span{k[1], n})
		h.Buckets[k[0]], h.Buckets[k[1]] = 0, 0
		h.N += float64(n)
	}
	slices.SortFunc(all, func(a, b span) int { return cmp.Compare(a.end, b.end) })
	bounds := make([]float64, 0, len(h.Buckets))
	for b := range h.Buckets {
		bounds = append(bounds, b)
	}
	slices.Sort(bounds)
	var cum float64
	i := 0
	for _, b := range bounds {
		for ; i < len(all) && all[i].end <= b; i++ {
			cum += float64(all[i].n)
		}
		h.Buckets[b] = cum
	}
	h.Buckets[math.Inf(1)] = h.N
	return h.Quantile(q)
}
