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
	flag.Parse()
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
	cpuPer10k        time.Duration
	ioPerReq         float64 // the proxies' read and write system calls per request
	rssIdle, rssLoad int64
	steal            float64 // % of the machine's CPU stolen by the hypervisor during the maximum-rate phase
	stealFixed       float64 // the same, during the fixed-rate phase
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
	fmt.Printf("loadrun: app %s; loader %s; fixed rate %d req/s and maximum with %d concurrent requests, %v each; cores of each proxy: %s\n",
		app, c.loader, c.rate, c.conns, c.duration, procs)
	var rows []row
	for _, proto := range strings.Split(c.protos, ",") {
		for _, t := range targets {
			if t.key != "direct" && !slices.Contains(strings.Split(c.paths, ","), t.key) {
				continue
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			var ld loader = builtin{client(proto, c.conns)}
			if c.loader == "fortio" {
				ld = fortio{bin: c.fortio, dir: dir, h2: proto == "h2c"}
			}
			r := row{proto: proto, path: t.name}
			var err error
			if _, err = ld.fixed(ctx, t.url, c.rate, time.Second, 8); err != nil { // warm-up: connections, EWMA
				return err
			}
			f0, fs0 := machineTicks()
			if r.fixed, err = ld.fixed(ctx, t.url, c.rate, c.duration, 8); err != nil {
				return err
			}
			f1, fs1 := machineTicks()
			r.stealFixed = stealShare(f0, fs0, f1, fs1)
			before, io0 := cpuOf(t.pids()), ioOf(t.pids())
			total0, steal0 := machineTicks()
			profiled := profile(ctx, c, proto, t)
			r.max, err = ld.max(ctx, t.url, c.duration, c.conns)
			total1, steal1 := machineTicks()
			r.steal = stealShare(total0, steal0, total1, steal1)
			if perr := <-profiled; err == nil {
				err = perr
			}
			if err != nil {
				return err
			}
			if len(t.proxies) > 0 && r.max.sent > 0 {
				r.cpuPer10k = (cpuOf(t.pids()) - before) * 10000 / time.Duration(r.max.sent)
				r.ioPerReq = float64(ioOf(t.pids())-io0) / float64(r.max.sent)
				for _, pid := range t.pids() {
					n, _ := rss(pid)
					r.rssLoad = max(r.rssLoad, n)
					r.rssIdle = max(r.rssIdle, idle[pid])
				}
			}
			fmt.Printf("  %-6s %-24s fixed: %v\n  %-6s %-24s max:   %v\n", proto, t.name, r.fixed, "", "", r.max)
			rows = append(rows, r)
		}
	}
	stopMesh()
	if err := <-upErr; err != nil {
		return fmt.Errorf("the mesh failed: %w", err)
	}
	report(rows, c.rate)
	return nil
}

func report(rows []row, rate int) {
	fmt.Println()
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "PROTO\tPATH\tp50@%d/s\tp99@%d/s\t+p50\t+p99\tMAX REQ/S\tOF DIRECT\tPROXY CPU/10k REQ\tI/O CALLS/REQ\tPROXY RSS IDLE/LOAD\tFAILED\tSTEAL FIXED/MAX\n", rate, rate)
	var direct row
	for _, r := range rows {
		if r.path == "direct" {
			direct = r
		}
		add50 := r.fixed.quantile(0.5) - direct.fixed.quantile(0.5)
		add99 := r.fixed.quantile(0.99) - direct.fixed.quantile(0.99)
		cpu, mem, calls := "-", "-", "-"
		if r.cpuPer10k > 0 {
			cpu = fmt.Sprintf("%d ms", r.cpuPer10k.Milliseconds())
			calls = fmt.Sprintf("%.1f", r.ioPerReq)
			mem = fmt.Sprintf("%.1f / %.1f MB", float64(r.rssIdle)/1e6, float64(r.rssLoad)/1e6)
		}
		fmt.Fprintf(w, "%s\t%s\t%v\t%v\t%+.2fms\t%+.2fms\t%.0f\t%.0f%%\t%s\t%s\t%s\t%d\t%.0f%% / %.0f%%\n", r.proto, r.path,
			r.fixed.quantile(0.5).Round(time.Microsecond), r.fixed.quantile(0.99).Round(time.Microsecond),
			float64(add50)/1e6, float64(add99)/1e6, r.max.rps(), 100*r.max.rps()/direct.max.rps(), cpu, calls, mem,
			r.fixed.failed+r.max.failed, r.stealFixed, r.steal)
	}
	w.Flush()
	fmt.Println("I/O CALLS: the proxies' read and write system calls per request during the maximum-rate phase (both proxies on the mesh path).")
	fmt.Println("STEAL: CPU time the hypervisor gave other guests during the fixed-rate and the maximum-rate phase; above a few percent, the latency (fixed) or throughput and CPU (max) figures of that row are not comparable.")
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
