package main

import (
	"context"
	"strconv"

	"github.com/meshlet/meshlet/internal/promhist"
)

// latencyMetric is the proxies' response latency histogram: from a
// request's arrival in the proxy's handler to the upstream's response
// headers, so it holds everything behind the proxy (the next proxy, the
// application, the wake-ups between them) and nothing in front of it.
const latencyMetric = "meshlet_response_latency_ms"

// scrapeLatency reads a proxy's latency histogram from its admin listener,
// all its series (directions, routes) added together.
func scrapeLatency(ctx context.Context, admin string) (promhist.Hist, error) {
	var h promhist.Hist
	families, err := promhist.Fetch(ctx, admin)
	if err != nil {
		return h, err
	}
	if mf := families[latencyMetric]; mf != nil {
		for _, m := range mf.GetMetric() {
			h.Add(m.GetHistogram())
		}
	}
	return h, nil
}

// scrapeAll reads the latency histogram of every proxy of t's path.
func scrapeAll(ctx context.Context, t target) ([]promhist.Hist, error) {
	var all []promhist.Hist
	for _, p := range t.proxies {
		h, err := scrapeLatency(ctx, p.Admin)
		if err != nil {
			return nil, err
		}
		all = append(all, h)
	}
	return all, nil
}

// proxyP99 is each proxy's own p99 (ms) between two scrapes, first proxy
// of the path first.
func proxyP99(before, after []promhist.Hist) []float64 {
	var p99 []float64
	for i := range after {
		p99 = append(p99, after[i].Sub(before[i]).Quantile(0.99))
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
