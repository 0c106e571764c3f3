package dev

import (
	"context"
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// meshTraffic is the sum of every upstream proxy's view, by destination,
// and every sidecar's view of its clients.
type meshTraffic struct {
	byDest  map[destKey]*counts
	tls     map[destKey]bool
	clients map[string]map[string]float64 // sidecar name → client identity → requests
	plain   map[string]float64            // sidecar name → plaintext requests
}

// collect scrapes every proxy of s once.
func collect(ctx context.Context, s Status) (*meshTraffic, error) {
	mt := &meshTraffic{byDest: map[destKey]*counts{}, tls: map[destKey]bool{}, clients: map[string]map[string]float64{}, plain: map[string]float64{}}
	for _, p := range s.Proxies {
		t, err := scrape(ctx, p.Admin)
		if err != nil {
			return nil, err
		}
		switch p.Kind {
		case "upstream":
			for k, c := range t.byDest {
				if mt.byDest[k] == nil {
					mt.byDest[k] = &counts{}
				}
				mt.byDest[k].add(c)
				mt.tls[k] = mt.tls[k] || t.tls[k]
			}
		case "sidecar":
			mt.clients[p.Name] = t.clients
			mt.plain[p.Name] = t.plain
		}
	}
	return mt, nil
}

// instanceRow is one line of a report.
type instanceRow struct {
	service, pod, address, identity string
	c                               *counts
	tls                             bool
	clients                         []string
	plain                           float64
}

// rows lines up the traffic between before and after by service and
// instance; the sidecar's pod name is "<service>-<index>".
func rows(s Status, before, after *meshTraffic) []instanceRow {
	var out []instanceRow
	for _, p := range s.Proxies {
		if p.Kind != "sidecar" {
			continue
		}
		pod := strings.TrimPrefix(p.Name, "sidecar/")
		k := destKey{p.Service, pod}
		var prev *counts
		if before != nil {
			prev = before.byDest[k]
		}
		c := &counts{}
		if now := after.byDest[k]; now != nil {
			c = now.sub(prev)
		}
		r := instanceRow{service: p.Service, pod: pod, address: p.Address, identity: p.Identity, c: c, tls: after.tls[k], plain: after.plain[p.Name]}
		for id, n := range after.clients[p.Name] {
			if n > 0 {
				r.clients = append(r.clients, id)
			}
		}
		sort.Strings(r.clients)
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].service != out[j].service {
			return out[i].service < out[j].service
		}
		return out[i].pod < out[j].pod
	})
	return out
}

func ms(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return fmt.Sprintf("%.1fms", v)
}

func pct(part, whole float64) string {
	if whole <= 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*part/whole)
}

// printTable writes per-service totals and per-instance lines. seconds,
// when positive, turns counts into rates.
func printTable(w io.Writer, rs []instanceRow, seconds float64) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	volume := "REQUESTS"
	if seconds > 0 {
		volume = "RPS"
	}
	fmt.Fprintf(tw, "SERVICE\tINSTANCE\t%s\tSHARE\tSUCCESS\tP50\tP99\tmTLS\tSERVER IDENTITY / CLIENTS SEEN\n", volume)
	totals := map[string]*counts{}
	var services []string
	for _, r := range rs {
		if totals[r.service] == nil {
			totals[r.service] = &counts{}
			services = append(services, r.service)
		}
		totals[r.service].add(r.c)
	}
	vol := func(n float64) string {
		if seconds > 0 {
			return fmt.Sprintf("%.1f", n/seconds)
		}
		return fmt.Sprintf("%.0f", n)
	}
	for _, svc := range services {
		t := totals[svc]
		fmt.Fprintf(tw, "%s\t(all)\t%s\t100%%\t%s\t%s\t%s\t\t\n", svc, vol(t.responses), pct(t.responses-t.failures, t.responses), ms(t.quantile(0.5)), ms(t.quantile(0.99)))
		for _, r := range rs {
			if r.service != svc {
				continue
			}
			tls := "no"
			if r.tls {
				tls = "yes"
			}
			who := r.identity
			if len(r.clients) > 0 {
				who += " ← " + strings.Join(r.clients, ", ")
			}
			if r.plain > 0 {
				who += fmt.Sprintf(" (+%.0f plaintext)", r.plain)
			}
			fmt.Fprintf(tw, "\t%s %s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.pod, r.address, vol(r.c.responses), pct(r.c.responses, t.responses),
				pct(r.c.responses-r.c.failures, r.c.responses), ms(r.c.quantile(0.5)), ms(r.c.quantile(0.99)), tls, who)
		}
	}
	tw.Flush()
}

// StatusReport prints live request rate, success rate, latency and TLS
// identities of the mesh running with stateDir, measured over interval.
func StatusReport(ctx context.Context, stateDir string, interval time.Duration, w io.Writer) error {
	if stateDir == "" {
		o := Options{}
		if err := o.defaults(); err != nil {
			return err
		}
		stateDir = o.StateDir
	}
	s, err := ReadStatus(stateDir)
	if err != nil {
		return err
	}
	before, err := collect(ctx, s)
	if err != nil {
		return fmt.Errorf("%w (is `meshctl dev up` still running?)", err)
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(interval):
	}
	after, err := collect(ctx, s)
	if err != nil {
		return err
	}
	printTable(w, rows(s, before, after), time.Since(start).Seconds())
	return nil
}
