package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// latencyMetric is the proxies' response latency histogram: from a
// request's arrival in the proxy's handler to the upstream's response
// headers, so it holds everything behind the proxy (the next proxy, the
// application, the wake-ups between them) and nothing in front of it.
const latencyMetric = "meshlet_response_latency_ms"

// buckets is a cumulative histogram: the count at or below each upper
// bound (ms), all label sets added together, +Inf last.
type buckets struct {
	le    []float64
	count []float64
}

// scrapeLatency reads a proxy's latency histogram from its admin listener.
func scrapeLatency(ctx context.Context, admin string) (buckets, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/metrics", nil)
	if err != nil {
		return buckets{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return buckets{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return buckets{}, fmt.Errorf("%s/metrics: %s", admin, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return buckets{}, fmt.Errorf("%s/metrics: %w", admin, err)
	}
	sum := map[float64]float64{}
	if mf := families[latencyMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			h := m.GetHistogram()
			for _, b := range h.GetBucket() {
				if !math.IsInf(b.GetUpperBound(), 1) { // the text format lists +Inf's bucket too
					sum[b.GetUpperBound()] += float64(b.GetCumulativeCount())
				}
			}
			sum[math.Inf(1)] += float64(h.GetSampleCount())
		}
	}
	var b buckets
	for le := range sum {
		b.le = append(b.le, le)
	}
	slices.Sort(b.le)
	for _, le := range b.le {
		b.count = append(b.count, sum[le])
	}
	return b, nil
}

// since returns the observations made between earlier and b.
func (b buckets) since(earlier buckets) buckets {
	d := buckets{le: b.le, count: slices.Clone(b.count)}
	for i, le := range b.le {
		if j := slices.Index(earlier.le, le); j >= 0 {
			d.count[i] -= earlier.count[j]
		}
	}
	return d
}

// quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linearly within the bucket that holds it. NaN without
// observations; the highest finite bound when it falls in +Inf's bucket.
func (b buckets) quantile(q float64) float64 {
	n := len(b.count)
	if n == 0 || b.count[n-1] <= 0 {
		return math.NaN()
	}
	rank := q * b.count[n-1]
	lower, below := 0.0, 0.0
	for i, le := range b.le {
		if b.count[i] >= rank {
			if math.IsInf(le, 1) {
				return lower
			}
			in := b.count[i] - below
			if in <= 0 {
				return le
			}
			return lower + (le-lower)*(rank-below)/in
		}
		lower, below = le, b.count[i]
	}
	return lower
}

// scrapeAll reads the latency histogram of every proxy of t's path.
func scrapeAll(ctx context.Context, t target) ([]buckets, error) {
	var all []buckets
	for _, p := range t.proxies {
		b, err := scrapeLatency(ctx, p.Admin)
		if err != nil {
			return nil, err
		}
		all = append(all, b)
	}
	return all, nil
}

// proxyP99 is each proxy's own p99 (ms) between two scrapes, first proxy
// of the path first.
func proxyP99(before, after []buckets) []float64 {
	var p99 []float64
	for i := range after {
		p99 = append(p99, after[i].since(before[i]).quantile(0.99))
	}
	return p99
}

// formatTails formats proxyP99's figures for the report.
func formatTails(p99 []float64) string {
	if len(p99) == 0 {
		return "-"
	}
	s := ""
	for i, v := range p99 {
		if i > 0 {
			s += " / "
		}
		s += strconv.FormatFloat(v, 'f', 2, 64)
	}
	return s + " ms"
}
