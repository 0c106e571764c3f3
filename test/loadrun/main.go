// Command loadrun measures what the mesh costs on loopback: HTTP/1.1 and
// h2c load, at a fixed rate and at the maximum, sent directly to an
// application, through one proxy (a sidecar's inbound side), and through the
// mesh path (client-side proxy → mTLS HTTP/2 → server-side sidecar). It
// prints added latency, throughput as a share of direct, proxy CPU per 10k
// requests and proxy RSS. `make bench` runs it; the proxies come from
// `meshctl dev`'s orchestration with the binaries in -bin.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/meshlet/meshlet/cli/dev"
)

type config struct {
	bin      string
	duration time.Duration
	rate     int
	conns    int
	procs    int
	protos   string
	profile  string
	paths    string
	loader   string
	fortio   string
	repeat   int
	maxSteal float64
	pairs    int
	slice    time.Duration
}

func main() {
	var c config
	flag.StringVar(&c.bin, "bin", "bin", "folder with meshlet-proxy, meshlet-identity and meshlet-destination")
	flag.DurationVar(&c.duration, "duration", 10*time.Second, "length of each load phase")
	flag.IntVar(&c.rate, "rate", 1000, "requests per second of the fixed-rate phase")
	flag.IntVar(&c.conns, "conns", 16, "concurrent requests of the maximum-rate phase")
	flag.StringVar(&c.protos, "protos", "http1,h2c", "protocols to run")
	flag.StringVar(&c.loader, "loader", "builtin", "load generator: builtin (this program's Go client) or fortio")
	flag.StringVar(&c.fortio, "fortio", "fortio", "the fortio binary, for -loader fortio")
	flag.StringVar(&c.paths, "paths", "direct,1proxy,mesh", "paths to run (direct is always run: the others are compared with it)")
	flag.IntVar(&c.procs, "proxy-cores", -1, "MESHLET_PROXY_CORES of the proxies (0: one per CPU; -1: the proxy's default, 1)")
	flag.StringVar(&c.profile, "profile", "", "folder for CPU profiles of the proxies taken during each maximum-rate phase (the proxies then run with --admin-pprof)")
	flag.IntVar(&c.repeat, "repeat", 1, "runs of every row; with more than one, the report gives each figure's median over the runs (and the CPU's range)")
	flag.Float64Var(&c.maxSteal, "max-steal", 0, "a phase in which the hypervisor stole more than this % of the machine's CPU is run again, up to 4 times (0: never)")
	flag.IntVar(&c.pairs, "pairs", 0, "instead of the phases: compare each path with direct at the fixed rate in this many pairs of slices taking turns (pairs.go), trying at most three times as many")
	flag.DurationVar(&c.slice, "slice", 5*time.Second, "length of each slice of -pairs")
	flag.Parse()
	if c.repeat < 1 {
		c.repeat = 1
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, c); err != nil {
		fmt.Fprintln(os.Stderr, "loadrun:", err)
		os.Exit(1)
	}
}

// target is one way to reach the application.
type target struct {
	key     string // as in -paths
	name    string
	url     string
	proxies []dev.ProxyStatus // on the path
}

func (t target) pids() []int {
	var pids []int
	for _, p := range t.proxies {
		pids = append(pids, p.PID)
	}
	return pids
}

type row struct {
	proto, path      string
	fixed, max       *result
	cpuPer10k        time.Duration // the proxies' CPU per 10k requests at the maximum rate
	cpuFixed10k      time.Duration // and at the fixed rate
	ioPerReq         float64       // the proxies' read and write system calls per request
	rssIdle, rssLoad int64
	steal            float64   // % of the machine's CPU stolen by the hypervisor during the maximum-rate phase
	stealFixed       float64   // the same, during the fixed-rate phase
	proxyP99         []float64 // each proxy's own p99 at the fixed rate (ms), first on the path first
	rep              int       // which of the -repeat runs
}

func run(ctx context.Context, c config) error {
	switch c.loader {
	case "builtin":
	case "fortio":
		if _, err := exec.LookPath(c.fortio); err != nil {
			return fmt.Errorf("-loader fortio: %w (make bench-fortio installs fortio)", err)
		}
	default:
		return fmt.Errorf("-loader %q: want builtin or fortio", c.loader)
	}
	bin, err := filepath.Abs(c.bin)
	if err != nil {
		return err
	}
	os.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	app, stopApp, err := backend()
	if err != nil {
		return err
	}
	defer stopApp()
	dir, err := os.MkdirTemp("", "meshlet-loadrun-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	listen, err := freeAddr()
	if err != nil {
		return err
	}
	file := filepath.Join(dir, "mesh.yaml")
	mesh := fmt.Sprintf("services:\n  app:\n    instances: [%s]\nupstreams:\n  - service: app\n    listen: %s\n", app, listen)
	if err := os.WriteFile(file, []byte(mesh), 0o644); err != nil {
		return err
	}
	if c.profile != "" {
		if err := os.MkdirAll(c.profile, 0o755); err != nil {
			return err
		}
		os.Setenv("MESHLET_PROXY_ADMIN_PPROF", "true")
	}
	procs := "the proxy's default"
	if c.procs >= 0 {
		// Read by the proxies dev.Up starts; unset again once they run.
		procs = strconv.Itoa(c.procs)
		os.Setenv("MESHLET_PROXY_CORES", procs)
	}
	meshCtx, stopMesh := context.WithCancel(ctx)
	defer stopMesh()
	ready := make(chan dev.Status, 1)
	upErr := make(chan error, 1)
	go func() {
		upErr <- dev.Up(meshCtx, dev.Options{File: file, StateDir: filepath.Join(dir, "state"), Grace: time.Second,
			Ready: func(s dev.Status) { ready <- s }})
	}()
	var st dev.Status
	select {
	case st = <-ready:
	case err := <-upErr:
		return fmt.Errorf("starting the mesh: %w", err)
	}
	os.Unsetenv("MESHLET_PROXY_CORES")
	var up, side dev.ProxyStatus
	for _, p := range st.Proxies {
		if p.Kind == "upstream" {
			up = p
		} else {
			side = p
		}
	}
	targets := []target{
		{"direct", "direct", "http://" + app + "/", nil},
		{"1proxy", "1 proxy", "http://" + side.Inbound + "/", []dev.ProxyStatus{side}},
		{"mesh", "mesh (2 proxies, mTLS)", "http://" + listen + "/", []dev.ProxyStatus{up, side}},
	}
	idle := map[int]int64{}
	for _, pid := range []int{up.PID, side.PID} {
		idle[pid], _ = rss(pid)
	}
	if c.pairs > 0 {
		fmt.Printf("loadrun: app %s; loader %s; %d pairs of %v slices at %d req/s; cores of each proxy: %s\n",
			app, c.loader, c.pairs, c.slice, c.rate, procs)
		return runPairs(ctx, c, targets, dir, stopMesh, upErr)
	}
	fmt.Printf("loadrun: app %s; loader %s; fixed rate %d req/s and maximum with %d concurrent requests, %v each; cores of each proxy: %s\n",
		app, c.loader, c.rate, c.conns, c.duration, procs)
	var rows []row
	for rep := 1; rep <= c.repeat; rep++ {
		for _, proto := range strings.Split(c.protos, ",") {
			for _, t := range targets {
				if t.key != "direct" && !slices.Contains(strings.Split(c.paths, ","), t.key) {
					continue
				}
				if ctx.Err() != nil {
					return ctx.Err()
				}
				r, err := measure(ctx, c, proto, t, dir, idle)
				if err != nil {
					return err
				}
				r.rep = rep
				rows = append(rows, r)
			}
		}
	}
	stopMesh()
	if err := <-upErr; err != nil {
		return fmt.Errorf("the mesh failed: %w", err)
	}
	report(rows, c.rate, c.repeat)
	return nil
}

// runPairs is run's -pairs mode.
func runPairs(ctx context.Context, c config, targets []target, dir string, stopMesh func(), upErr <-chan error) error {
	var ps []*pairing
	for _, proto := range strings.Split(c.protos, ",") {
		for _, t := range targets[1:] {
			if !slices.Contains(strings.Split(c.paths, ","), t.key) {
				continue
			}
			p, err := pair(ctx, c, proto, targets[0], t, dir)
			if err != nil {
				return err
			}
			ps = append(ps, p)
		}
	}
	stopMesh()
	if err := <-upErr; err != nil {
		return fmt.Errorf("the mesh failed: %w", err)
	}
	reportPairs(ps, c)
	return nil
}

// maxTries bounds the runs of a phase -max-steal sends again.
const maxTries = 4

// measure loads one path with one protocol: a warm-up, the fixed-rate
// phase, then the maximum-rate phase with the proxies' CPU, system calls and
// memory. With -max-steal, a phase the hypervisor stole more of is run
// again, up to maxTries times.
func measure(ctx context.Context, c config, proto string, t target, dir string, idle map[int]int64) (row, error) {
	ld := c.newLoader(proto, dir)
	r := row{proto: proto, path: t.name}
	if _, err := ld.fixed(ctx, t.url, c.rate, time.Second, 8); err != nil { // warm-up: connections, EWMA
		return r, err
	}
	for try := 1; ; try++ {
		f0, fs0 := machineTicks()
		cpu0 := cpuOf(t.pids())
		hist0, err := scrapeAll(ctx, t)
		if err != nil {
			return r, err
		}
		res, err := ld.fixed(ctx, t.url, c.rate, c.duration, 8)
		if err != nil {
			return r, err
		}
		f1, fs1 := machineTicks()
		hist1, err := scrapeAll(ctx, t)
		if err != nil {
			return r, err
		}
		r.proxyP99 = proxyP99(hist0, hist1)
		r.fixed, r.stealFixed = res, stealShare(f0, fs0, f1, fs1)
		if len(t.proxies) > 0 && res.sent > 0 {
			r.cpuFixed10k = (cpuOf(t.pids()) - cpu0) * 10000 / time.Duration(res.sent)
		}
		if !c.stolen(r.stealFixed, try, proto, t.name, "fixed") {
			break
		}
	}
	for try := 1; ; try++ {
		before, io0 := cpuOf(t.pids()), ioOf(t.pids())
		total0, steal0 := machineTicks()
		profiled := profile(ctx, c, proto, t)
		res, err := ld.max(ctx, t.url, c.duration, c.conns)
		total1, steal1 := machineTicks()
		if perr := <-profiled; err == nil {
			err = perr
		}
		if err != nil {
			return r, err
		}
		r.max, r.steal = res, stealShare(total0, steal0, total1, steal1)
		if len(t.proxies) > 0 && r.max.sent > 0 {
			r.cpuPer10k = (cpuOf(t.pids()) - before) * 10000 / time.Duration(r.max.sent)
			r.ioPerReq = float64(ioOf(t.pids())-io0) / float64(r.max.sent)
			for _, pid := range t.pids() {
				n, _ := rss(pid)
				r.rssLoad = max(r.rssLoad, n)
				r.rssIdle = max(r.rssIdle, idle[pid])
			}
		}
		if !c.stolen(r.steal, try, proto, t.name, "max") {
			break
		}
	}
	fmt.Printf("  %-6s %-24s fixed: %v\n  %-6s %-24s max:   %v\n", proto, t.name, r.fixed, "", "", r.max)
	return r, nil
}

// newLoader returns the -loader for proto.
func (c config) newLoader(proto, dir string) loader {
	if c.loader == "fortio" {
		return fortio{bin: c.fortio, dir: dir, h2: proto == "h2c"}
	}
	return builtin{client(proto, c.conns)}
}

// stolen reports whether a phase with this steal should run again.
func (c config) stolen(steal float64, try int, proto, path, phase string) bool {
	if c.maxSteal <= 0 || steal <= c.maxSteal {
		return false
	}
	if try >= maxTries {
		fmt.Printf("  %-6s %-24s %s: steal %.0f%% after %d tries; kept\n", proto, path, phase, steal, try)
		return false
	}
	fmt.Printf("  %-6s %-24s %s: steal %.0f%% > %.0f%%; again\n", proto, path, phase, steal, c.maxSteal)
	return true
}

// figures are one row's numbers as the report prints them, the latency
// and throughput compared with direct's in the same run.
type figures struct {
	p50, p99, add50, add99 float64 // ms
	rps, ofDirect          float64
	cpu, cpuFixed, io      float64 // ms per 10k requests at max and at the fixed rate; calls per request
	rssIdle, rssLoad       float64 // MB
	failed                 int64
	stealFixed, steal      float64
	proxyP99               []float64 // ms, each proxy's own, first on the path first
}

func figuresOf(r, direct row) figures {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	return figures{
		p50: ms(r.fixed.quantile(0.5)), p99: ms(r.fixed.quantile(0.99)),
		add50: ms(r.fixed.quantile(0.5) - direct.fixed.quantile(0.5)),
		add99: ms(r.fixed.quantile(0.99) - direct.fixed.quantile(0.99)),
		rps:   r.max.rps(), ofDirect: 100 * r.max.rps() / direct.max.rps(),
		cpu: float64(r.cpuPer10k.Milliseconds()), cpuFixed: float64(r.cpuFixed10k.Milliseconds()), io: r.ioPerReq,
		rssIdle: float64(r.rssIdle) / 1e6, rssLoad: float64(r.rssLoad) / 1e6,
		failed: r.fixed.failed + r.max.failed, stealFixed: r.stealFixed, steal: r.steal,
		proxyP99: r.proxyP99,
	}
}

func report(rows []row, rate, repeat int) {
	// Each row against the direct row of its run and protocol.
	direct := map[string]row{}
	var keys []string
	runs := map[string][]figures{}
	var all []figures
	for _, r := range rows {
		if r.path == "direct" {
			direct[fmt.Sprint(r.rep, r.proto)] = r
		}
		f := figuresOf(r, direct[fmt.Sprint(r.rep, r.proto)])
		k := r.proto + "\t" + r.path
		if _, ok := runs[k]; !ok {
			keys = append(keys, k)
		}
		runs[k] = append(runs[k], f)
		all = append(all, f)
	}
	header := fmt.Sprintf("PROTO\tPATH\tp50@%d/s\tp99@%d/s\t+p50\t+p99\tMAX REQ/S\tOF DIRECT\tPROXY p99 @%d/s\tCPU/10k @MAX\tCPU/10k @%d/s\tI/O CALLS/REQ\tPROXY RSS IDLE/LOAD\tFAILED\tSTEAL FIXED/MAX\n", rate, rate, rate, rate)
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	if repeat > 1 {
		fmt.Fprint(w, "RUN\t"+header)
		for i, r := range rows {
			fmt.Fprintf(w, "%d\t%s\t%s\n", r.rep, r.proto+"\t"+r.path, all[i].cells(""))
		}
		w.Flush()
		fmt.Printf("\nMedians of %d runs (CPU: median, and lowest–highest):\n", repeat)
	}
	fmt.Fprint(w, header)
	for _, k := range keys {
		fs := runs[k]
		med := func(get func(f figures) float64) float64 {
			v := make([]float64, len(fs))
			for i, f := range fs {
				v[i] = get(f)
			}
			return median(v)
		}
		m := figures{
			p50: med(func(f figures) float64 { return f.p50 }), p99: med(func(f figures) float64 { return f.p99 }),
			add50: med(func(f figures) float64 { return f.add50 }), add99: med(func(f figures) float64 { return f.add99 }),
			rps: med(func(f figures) float64 { return f.rps }), ofDirect: med(func(f figures) float64 { return f.ofDirect }),
			cpu: med(func(f figures) float64 { return f.cpu }), cpuFixed: med(func(f figures) float64 { return f.cpuFixed }), io: med(func(f figures) float64 { return f.io }),
			rssIdle: med(func(f figures) float64 { return f.rssIdle }), rssLoad: med(func(f figures) float64 { return f.rssLoad }),
			stealFixed: med(func(f figures) float64 { return f.stealFixed }), steal: med(func(f figures) float64 { return f.steal }),
		}
		for i := range fs[0].proxyP99 {
			m.proxyP99 = append(m.proxyP99, med(func(f figures) float64 { return f.proxyP99[i] }))
		}
		lo, hi := fs[0].cpu, fs[0].cpu
		for _, f := range fs {
			m.failed += f.failed
			lo, hi = min(lo, f.cpu), max(hi, f.cpu)
		}
		span := ""
		if len(fs) > 1 && m.cpu > 0 {
			span = fmt.Sprintf(" (%.0f–%.0f)", lo, hi)
		}
		fmt.Fprintf(w, "%s\t%s\n", k, m.cells(span))
	}
	w.Flush()
	fmt.Println("PROXY p99: each proxy's own p99 at the fixed rate, from its response latency histogram (its handler's start to the upstream's response headers: what lies behind it; ms buckets, interpolated), first proxy on the path first.")
	fmt.Println("I/O CALLS: the proxies' read and write system calls per request during the maximum-rate phase (both proxies on the mesh path).")
	fmt.Println("STEAL: CPU time the hypervisor gave other guests during the fixed-rate and the maximum-rate phase; above a few percent, the latency (fixed) or throughput and CPU (max) figures of that row are not comparable.")
}

// cells formats f as the report's columns after PROTO and PATH.
func (f figures) cells(cpuSpan string) string {
	cpu, cpuFixed, mem, calls := "-", "-", "-", "-"
	if f.cpu > 0 {
		cpu = fmt.Sprintf("%.0f ms%s", f.cpu, cpuSpan)
		cpuFixed = fmt.Sprintf("%.0f ms", f.cpuFixed)
		calls = fmt.Sprintf("%.1f", f.io)
		mem = fmt.Sprintf("%.1f / %.1f MB", f.rssIdle, f.rssLoad)
	}
	return fmt.Sprintf("%.3fms\t%.3fms\t%+.2fms\t%+.2fms\t%.0f\t%.0f%%\t%s\t%s\t%s\t%s\t%s\t%d\t%.0f%% / %.0f%%",
		f.p50, f.p99, f.add50, f.add99, f.rps, f.ofDirect, formatTails(f.proxyP99), cpu, cpuFixed, calls, mem, f.failed, f.stealFixed, f.steal)
}

func ioOf(pids []int) int64 {
	var n int64
	for _, pid := range pids {
		n += ioCalls(pid)
	}
	return n
}

func cpuOf(pids []int) time.Duration {
	var total time.Duration
	for _, pid := range pids {
		t, _ := cpuTime(pid)
		total += t
	}
	return total
}
