package main

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"text/tabwriter"
	"time"

	"github.com/meshlet/meshlet/internal/promhist"
)

// The paired comparison (-pairs): a path and direct take turns at the fixed
// rate in short slices — direct first in odd pairs, the path first in even
// ones — so both see the same state of a shared machine. A pair in which
// the hypervisor stole more than -max-steal in either slice is left out.
// The figures come from all requests of the kept pairs.

// pairing is the paired comparison of one path with direct.
type pairing struct {
	proto, path  string
	kept, tried  int
	direct, via  spans           // latencies of the kept pairs' slices
	add99        []float64       // each kept pair's own +p99 (ms)
	proxies      []promhist.Hist // each proxy's own latency, kept pairs only
	cpu          time.Duration   // the proxies' CPU in the kept pairs' path slices
	sent         int64           // and the requests of those slices
	failed       int64           // requests that failed, in every slice tried
	maxStealKept float64
}

// slice is one fixed-rate slice of a pair.
type slice struct {
	res   *result
	steal float64
	proxy []promhist.Hist // each proxy's latency during the slice
	cpu   time.Duration   // the proxies' CPU during the slice
}

func runSlice(ctx context.Context, c config, ld loader, t target) (slice, error) {
	var s slice
	h0, err := scrapeAll(ctx, t)
	if err != nil {
		return s, err
	}
	total0, steal0 := machineTicks()
	cpu0 := cpuOf(t.pids())
	s.res, err = ld.fixed(ctx, t.url, c.rate, c.slice, 8)
	if err != nil {
		return s, err
	}
	s.cpu = cpuOf(t.pids()) - cpu0
	total1, steal1 := machineTicks()
	s.steal = stealShare(total0, steal0, total1, steal1)
	h1, err := scrapeAll(ctx, t)
	if err != nil {
		return s, err
	}
	for i := range h1 {
		s.proxy = append(s.proxy, h1[i].Sub(h0[i]))
	}
	return s, nil
}

// pair compares t with direct in c.pairs kept pairs of slices, trying at
// most three times as many.
func pair(ctx context.Context, c config, proto string, direct, t target, dir string) (*pairing, error) {
	return pairWith(ctx, c, c.newLoader(proto, dir), proto, direct, t)
}

func pairWith(ctx context.Context, c config, ld loader, proto string, direct, t target) (*pairing, error) {
	for _, x := range []target{direct, t} { // warm-up: connections, EWMA
		if _, err := ld.fixed(ctx, x.url, c.rate, time.Second, 8); err != nil {
			return nil, err
		}
	}
	p := &pairing{proto: proto, path: t.name, direct: spans{}, via: spans{}, proxies: make([]promhist.Hist, len(t.proxies))}
	for p.kept < c.pairs && p.tried < 3*c.pairs {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p.tried++
		order := []target{direct, t}
		if p.tried%2 == 0 {
			order = []target{t, direct}
		}
		var d, v slice
		for _, x := range order {
			s, err := runSlice(ctx, c, ld, x)
			if err != nil {
				return nil, err
			}
			p.failed += s.res.failed
			if x.key == "direct" {
				d = s
			} else {
				v = s
			}
		}
		add := v.res.spans.quantile(0.99) - d.res.spans.quantile(0.99)
		line := fmt.Sprintf("  %-6s %-24s pair %2d: p99 direct %.2f ms, %s %.2f ms (%+.2f); steal %.0f%% / %.0f%%",
			proto, t.name, p.tried, d.res.spans.quantile(0.99), t.key, v.res.spans.quantile(0.99), add, d.steal, v.steal)
		if c.maxSteal > 0 && max(d.steal, v.steal) > c.maxSteal {
			fmt.Println(line + "; left out")
			continue
		}
		fmt.Println(line)
		p.kept++
		p.direct.merge(d.res.spans)
		p.via.merge(v.res.spans)
		p.add99 = append(p.add99, add)
		p.cpu += v.cpu
		p.sent += v.res.sent
		for i := range v.proxy {
			p.proxies[i].Merge(v.proxy[i])
		}
		p.maxStealKept = max(p.maxStealKept, d.steal, v.steal)
	}
	return p, nil
}

// median returns the middle of v (the mean of the two middle values for
// an even count), and NaN for none.
func median(v []float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func reportPairs(ps []*pairing, c config) {
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "PROTO\tPATH\tPAIRS KEPT\tp50 DIRECT / PATH\tp99 DIRECT / PATH\t+p50\t+p99\t+p99 PER PAIR: MEDIAN (RANGE)\tPROXY p99\tPROXY CPU/10k\tFAILED\tMAX STEAL KEPT\n")
	for _, p := range ps {
		if p.kept == 0 {
			fmt.Fprintf(w, "%s\t%s\t0 of %d\t-\t-\t-\t-\t-\t-\t-\t%d\t-\n", p.proto, p.path, p.tried, p.failed)
			continue
		}
		d50, v50 := p.direct.quantile(0.5), p.via.quantile(0.5)
		d99, v99 := p.direct.quantile(0.99), p.via.quantile(0.99)
		var tails []float64
		for _, h := range p.proxies {
			tails = append(tails, h.Quantile(0.99))
		}
		fmt.Fprintf(w, "%s\t%s\t%d of %d\t%.3f / %.3f ms\t%.3f / %.3f ms\t%+.2f ms\t%+.2f ms\t%+.2f ms (%+.2f … %+.2f)\t%s\t%s\t%d\t%.0f%%\n",
			p.proto, p.path, p.kept, p.tried, d50, v50, d99, v99, v50-d50, v99-d99,
			median(p.add99), slices.Min(p.add99), slices.Max(p.add99), formatTails(tails), cpuPer10k(p.cpu, p.sent), p.failed, p.maxStealKept)
	}
	w.Flush()
	left := "every pair is kept (no -max-steal)"
	if c.maxSteal > 0 {
		left = fmt.Sprintf("a pair with more than %.0f%% steal in either slice is left out", c.maxSteal)
	}
	fmt.Printf("Pairs of %v slices at %d req/s, direct and the path taking turns; %s.\n", c.slice, c.rate, left)
	fmt.Println("+p50, +p99: from all requests of the kept pairs' slices. PER PAIR: the spread of the pairs' own +p99. PROXY p99: each proxy's own, over the kept pairs. PROXY CPU: all proxies of the path, per 10k requests of the kept pairs. FAILED: failed requests in every slice, kept or not.")
}

func cpuPer10k(cpu time.Duration, sent int64) string {
	if sent == 0 || cpu == 0 {
		return "-"
	}
	return fmt.Sprintf("%d ms", (cpu * 10000 / time.Duration(sent)).Milliseconds())
}
