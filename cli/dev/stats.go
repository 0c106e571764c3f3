package dev

import (
	"context"
	"fmt"

	dto "github.com/prometheus/client_model/go"

	"github.com/meshlet/meshlet/internal/promhist"
)

// counts are one destination's cumulative response figures as a proxy's
// metrics report them at one moment.
type counts struct {
	responses float64
	failures  float64
	latency   promhist.Hist // ms
}

func (c *counts) add(o *counts) {
	c.responses += o.responses
	c.failures += o.failures
	c.latency.Merge(o.latency)
}

// sub returns c - o: what happened between two scrapes.
func (c *counts) sub(o *counts) *counts {
	if o == nil {
		o = &counts{}
	}
	return &counts{responses: c.responses - o.responses, failures: c.failures - o.failures, latency: c.latency.Sub(o.latency)}
}

// quantile estimates the q-quantile of latency (ms).
func (c *counts) quantile(q float64) float64 { return c.latency.Quantile(q) }

// destKey names one destination of traffic: a service's instance (pod).
type destKey struct{ service, pod string }

// traffic is what one scrape of a proxy says, by destination, and which
// TLS peers it saw.
type traffic struct {
	byDest  map[destKey]*counts
	tls     map[destKey]bool   // destinations reached over mTLS
	clients map[string]float64 // inbound: client identity → requests
	plain   float64            // inbound: requests without TLS
}

// scrape reads a proxy's /metrics and sums its HTTP golden metrics.
func scrape(ctx context.Context, admin string) (*traffic, error) {
	fams, err := promhist.Fetch(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	return parseTraffic(fams), nil
}

func labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, l := range m.GetLabel() {
		out[l.GetName()] = l.GetValue()
	}
	return out
}

func parseTraffic(fams map[string]*dto.MetricFamily) *traffic {
	t := &traffic{byDest: map[destKey]*counts{}, tls: map[destKey]bool{}, clients: map[string]float64{}}
	get := func(k destKey) *counts {
		c := t.byDest[k]
		if c == nil {
			c = &counts{}
			t.byDest[k] = c
		}
		return c
	}
	if f := fams["meshlet_response_total"]; f != nil {
		for _, m := range f.GetMetric() {
			l := labels(m)
			n := m.GetCounter().GetValue()
			if l["direction"] == "inbound" {
				if l["tls"] == "true" && l["client_id"] != "" {
					t.clients[l["client_id"]] += n
				} else {
					t.plain += n
				}
				continue
			}
			k := destKey{l["dst_service"], l["dst_pod"]}
			c := get(k)
			c.responses += n
			if l["classification"] == "failure" {
				c.failures += n
			}
			if l["tls"] == "true" {
				t.tls[k] = true
			}
		}
	}
	if f := fams["meshlet_response_latency_ms"]; f != nil {
		for _, m := range f.GetMetric() {
			l := labels(m)
			if l["direction"] == "inbound" {
				continue
			}
			c := get(destKey{l["dst_service"], l["dst_pod"]})
			c.latency.Add(m.GetHistogram())
		}
	}
	return t
}
