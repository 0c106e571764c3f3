//go:build linux

package e2e

import (
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// metrics are one scrape of a proxy's /metrics.
type metrics map[string]*dto.MetricFamily

// scrape reads the proxy's /metrics from inside its pod.
func (p *pod) scrape(t *testing.T) metrics {
	t.Helper()
	resp, err := p.client.Get("http://127.0.0.1:4191/metrics")
	if err != nil {
		t.Fatalf("e2e: scrape %s: %v", p.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("e2e: scrape %s: %d %v", p.name, resp.StatusCode, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(strings.NewReader(string(b)))
	if err != nil {
		t.Fatalf("e2e: parse metrics of %s: %v", p.name, err)
	}
	return fams
}

// sum adds the values of name's series whose labels include want.
func (ms metrics) sum(name string, want map[string]string) float64 {
	f := ms[name]
	if f == nil {
		return 0
	}
	var total float64
	for _, m := range f.Metric {
		if !labelsMatch(m, want) {
			continue
		}
		switch {
		case m.Counter != nil:
			total += m.Counter.GetValue()
		case m.Gauge != nil:
			total += m.Gauge.GetValue()
		case m.Untyped != nil:
			total += m.Untyped.GetValue()
		case m.Histogram != nil:
			total += float64(m.Histogram.GetSampleCount())
		}
	}
	return total
}

func labelsMatch(m *dto.Metric, want map[string]string) bool {
	for k, v := range want {
		found := false
		for _, l := range m.Label {
			if l.GetName() == k {
				found = l.GetValue() == v
				break
			}
		}
		if !found && v != "" {
			return false
		}
	}
	return true
}

// series lists name's series as label strings, for failure messages.
func (ms metrics) series(name string) string {
	f := ms[name]
	if f == nil {
		return "(no " + name + ")"
	}
	var out []string
	for _, m := range f.Metric {
		var ls []string
		for _, l := range m.Label {
			ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
		v := 0.0
		if m.Counter != nil {
			v = m.Counter.GetValue()
		}
		out = append(out, fmt.Sprintf("  {%s} %v", strings.Join(ls, ","), v))
	}
	sort.Strings(out)
	return name + ":\n" + strings.Join(out, "\n")
}
