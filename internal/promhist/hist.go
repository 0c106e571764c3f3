// Package promhist reads quantiles out of Prometheus histograms as
// Prometheus's histogram_quantile does: linearly within the bucket that
// holds the quantile. meshctl dev's traffic report and the load run use it
// on the proxies' meshlet_response_latency_ms.
package promhist

import (
	"math"
	"sort"

	dto "github.com/prometheus/client_model/go"
)

// Hist is a cumulative histogram, summed over the series added to it: the
// count of observations at or below each upper bound. The +Inf bound holds
// every observation. The zero Hist is empty and ready to use.
type Hist struct {
	Buckets map[float64]float64 // upper bound → cumulative count
	N       float64             // observations
}

// Add adds one series of a histogram family, as expfmt parses it.
func (h *Hist) Add(m *dto.Histogram) {
	if h.Buckets == nil {
		h.Buckets = map[float64]float64{}
	}
	for _, b := range m.GetBucket() {
		if !math.IsInf(b.GetUpperBound(), 1) { // the text format lists +Inf's bucket too
			h.Buckets[b.GetUpperBound()] += float64(b.GetCumulativeCount())
		}
	}
	h.Buckets[math.Inf(1)] += float64(m.GetSampleCount())
	h.N += float64(m.GetSampleCount())
}

// Merge adds o's observations to h.
func (h *Hist) Merge(o Hist) {
	if h.Buckets == nil {
		h.Buckets = map[float64]float64{}
	}
	for le, n := range o.Buckets {
		h.Buckets[le] += n
	}
	h.N += o.N
}

// Sub returns h − o: the observations made between a scrape o and a later
// scrape h.
func (h Hist) Sub(o Hist) Hist {
	d := Hist{Buckets: make(map[float64]float64, len(h.Buckets)), N: h.N - o.N}
	for le, n := range h.Buckets {
		d.Buckets[le] = n - o.Buckets[le]
	}
	return d
}

// Quantile estimates the q-quantile (0 < q < 1) in the buckets' unit. It
// is NaN without observations, and the highest finite bound when the
// quantile lies above it.
func (h Hist) Quantile(q float64) float64 {
	if h.N <= 0 {
		return math.NaN()
	}
	bounds := make([]float64, 0, len(h.Buckets))
	for le := range h.Buckets {
		bounds = append(bounds, le)
	}
	sort.Float64s(bounds)
	rank := q * h.N
	lower, below := 0.0, 0.0
	for _, le := range bounds {
		n := h.Buckets[le]
		if n >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			if n == below {
				return le
			}
			return lower + (le-lower)*(rank-below)/(n-below)
		}
		lower, below = le, n
	}
	return lower
}
