package loadtest

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/meshlet/meshlet/identity"
)

const (
	webID = "spiffe://meshlet.local/ns/default/sa/web"
	appID = "spiffe://meshlet.local/ns/default/sa/app"
)

// proc is a started process, stopped (SIGTERM, then kill) at cleanup.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
}

func start(t *testing.T, dir, name string, env []string, argv ...string) *proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = dir
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, done: make(chan struct{})}
	go func() { cmd.Wait(); logf.Close(); close(p.done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// cpuTicks is the process's user+system CPU time in clock ticks (1/100 s).
func (p *proc) cpuTicks(t *testing.T) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are the
	// 14th and 15th fields of the whole line.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return u + s
}

// rssMB is the process's resident set size now.
func (p *proc) rssMB(t *testing.T) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func waitReady(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready after 30s", url)
}

// result is what one fortio run measured.
type result struct {
	calls          int64
	qps, p50, p99  float64 // p50, p99 in seconds
	codes          map[string]int64
	cpuMsPer10k    float64
	rssCli, rssWeb float64
}

// fortioJSON is the part of fortio's -json output used here.
type fortioJSON struct {
	ActualQPS         float64
	RetCodes          map[string]int64
	DurationHistogram struct {
		Count       int64
		Percentiles []struct {
			Percentile float64
			Value      float64
		}
	}
}

func TestLoad(t *testing.T) {
	if os.Getenv("MESHLET_LOADTEST") == "" {
		t.Skip("set MESHLET_LOADTEST=1 to run the load test (minutes; wants the machine to itself)")
	}
	fortio, err := exec.LookPath("fortio")
	if err != nil {
		gopath, _ := exec.Command("go", "env", "GOPATH").Output()
		fortio = filepath.Join(strings.TrimSpace(string(gopath)), "bin", "fortio")
		if _, err := os.Stat(fortio); err != nil {
			t.Skip("fortio not found: go install fortio.org/fortio@v1.68.2")
		}
	}
	dur := 10 * time.Second
	if d, err := time.ParseDuration(os.Getenv("MESHLET_LOADTEST_DURATION")); err == nil {
		dur = d
	}
	dir := t.TempDir()

	// The binaries, built from this checkout.
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.Command("go", "build", "-o", dir+"/", "./proxy/cmd/meshlet-proxy", "./identity/cmd/meshlet-identity", "./destination/cmd/meshlet-destination")
	build.Dir = strings.TrimSpace(string(root))
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}

	// A CA, join tokens and the endpoints file.
	ca, err := identity.NewRootCA("meshlet.local", 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := identity.NewIssuer(ca, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.crt", string(ca.CertPEM))
	write("issuer.crt", string(iss.CertPEM))
	write("issuer.key", string(iss.KeyPEM))
	write("join-tokens", "tok-web-0123456789abcdef "+webID+"\ntok-app-0123456789abcdef "+appID+"\n")
	write("web.token", "tok-web-0123456789abcdef")
	write("app.token", "tok-app-0123456789abcdef")
	appAddr, webIn := freeAddr(t), freeAddr(t)
	write("endpoints.yaml", fmt.Sprintf(`services:
  web.default.svc.cluster.local:
    port: 80
    aliases: ["web:80"]
    endpoints:
      - address: %s
        identity: %s
  plain.default.svc.cluster.local:
    port: 80
    aliases: ["plain:80"]
    endpoints:
      - address: %s
`, webIn, webID, appAddr))

	idAddr, dstAddr := freeAddr(t), freeAddr(t)
	start(t, dir, "app", nil, fortio, "server", "-http-port", appAddr, "-grpc-port", "disabled", "-redirect-port", "disabled", "-loglevel", "Warning")
	start(t, dir, "identity", nil, dir+"/meshlet-identity", "--mode", "local", "--trust-domain", "meshlet.local",
		"--addr", idAddr, "--admin-addr", freeAddr(t), "--issuer-cert-file", "issuer.crt", "--issuer-key-file", "issuer.key",
		"--trust-anchors-file", "ca.crt", "--join-tokens-file", "join-tokens")
	start(t, dir, "destination", nil, dir+"/meshlet-destination", "--source", "file", "--file", "endpoints.yaml",
		"--grpc-addr", dstAddr, "--admin-addr", freeAddr(t), "--trust-domain", "meshlet.local")
	common := []string{"MESHLET_PROXY_IDENTITY_ADDR=" + idAddr, "MESHLET_PROXY_DESTINATION_ADDR=" + dstAddr,
		"MESHLET_PROXY_TRUST_ANCHORS_FILE=ca.crt", "MESHLET_PROXY_POD_NAMESPACE=default", "MESHLET_PROXY_LOG_LEVEL=warn"}
	webAdmin, cliAdmin, cliOut := freeAddr(t), freeAddr(t), freeAddr(t)
	web := start(t, dir, "proxy-web", append(common, "MESHLET_PROXY_IDENTITY="+webID, "MESHLET_PROXY_IDENTITY_TOKEN_FILE=web.token",
		"MESHLET_PROXY_INBOUND_ADDR="+webIn, "MESHLET_PROXY_OUTBOUND_ADDR="+freeAddr(t), "MESHLET_PROXY_ADMIN_ADDR="+webAdmin,
		"MESHLET_PROXY_INBOUND_TARGET="+appAddr), dir+"/meshlet-proxy")
	cli := start(t, dir, "proxy-app", append(common, "MESHLET_PROXY_IDENTITY="+appID, "MESHLET_PROXY_IDENTITY_TOKEN_FILE=app.token",
		"MESHLET_PROXY_INBOUND_ADDR="+freeAddr(t), "MESHLET_PROXY_OUTBOUND_ADDR="+cliOut, "MESHLET_PROXY_ADMIN_ADDR="+cliAdmin), dir+"/meshlet-proxy")
	waitReady(t, "http://"+webAdmin+"/ready")
	waitReady(t, "http://"+cliAdmin+"/ready")
	t.Logf("idle RSS: client proxy %.1f MB, server proxy %.1f MB", cli.rssMB(t), web.rssMB(t))

	run := func(name, addr, host string, h2 bool, qps, conns int) result {
		out := filepath.Join(dir, strings.Map(func(r rune) rune {
			if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
				return r
			}
			return '_'
		}, name)+".json")
		args := []string{"load", "-quiet", "-t", dur.String(), "-qps", strconv.Itoa(qps), "-c", strconv.Itoa(conns),
			"-H", "Host: " + host, "-json", out}
		if h2 {
			args = append(args, "-h2")
		}
		args = append(args, "http://"+addr+"/echo")
		c0 := cli.cpuTicks(t) + web.cpuTicks(t)
		ctx, cancel := context.WithTimeout(context.Background(), dur+time.Minute)
		defer cancel()
		if b, err := exec.CommandContext(ctx, fortio, args...).CombinedOutput(); err != nil {
			t.Fatalf("fortio %s: %v\n%s", name, err, b)
		}
		c1 := cli.cpuTicks(t) + web.cpuTicks(t)
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		var fj fortioJSON
		if err := json.Unmarshal(b, &fj); err != nil {
			t.Fatalf("fortio json: %v", err)
		}
		r := result{calls: fj.DurationHistogram.Count, qps: fj.ActualQPS, codes: fj.RetCodes,
			rssCli: cli.rssMB(t), rssWeb: web.rssMB(t)}
		for _, p := range fj.DurationHistogram.Percentiles {
			switch p.Percentile {
			case 50:
				r.p50 = p.Value
			case 99:
				r.p99 = p.Value
			}
		}
		if r.calls > 0 {
			r.cpuMsPer10k = float64(c1-c0) * 10 * 10000 / float64(r.calls)
		}
		for code, n := range r.codes {
			if code != "200" {
				t.Errorf("%s: %d responses with status %s", name, n, code)
			}
		}
		return r
	}

	var table strings.Builder
	fmt.Fprintf(&table, "%-8s %-6s %-10s %9s %9s %9s %9s %9s %11s %9s %9s\n",
		"proto", "rate", "path", "req/s", "p50 ms", "p99 ms", "+p50 ms", "+p99 ms", "CPU ms/10k", "RSS cli", "RSS web")
	for _, h2 := range []bool{false, true} {
		proto := "HTTP/1.1"
		if h2 {
			proto = "h2c"
		}
		for _, rate := range []struct {
			name       string
			qps, conns int
		}{{"1000/s", 1000, 8}, {"max", 0, 16}} {
			direct := run(proto+" "+rate.name+" direct", appAddr, "web", h2, rate.qps, rate.conns)
			for _, path := range []struct{ name, addr, host string }{
				{"direct", appAddr, "web"}, {"1 proxy", cliOut, "plain:80"}, {"mesh", cliOut, "web:80"},
			} {
				r := direct
				if path.name != "direct" {
					r = run(proto+" "+rate.name+" "+path.name, path.addr, path.host, h2, rate.qps, rate.conns)
				}
				extra := ""
				if rate.qps == 0 && path.name != "direct" {
					extra = fmt.Sprintf("  (%.0f%% of direct's throughput)", 100*r.qps/direct.qps)
				}
				fmt.Fprintf(&table, "%-8s %-6s %-10s %9.0f %9.3f %9.3f %9.3f %9.3f %11.0f %7.1fMB %7.1fMB%s\n",
					proto, rate.name, path.name, r.qps, r.p50*1e3, r.p99*1e3, (r.p50-direct.p50)*1e3, (r.p99-direct.p99)*1e3,
					r.cpuMsPer10k, r.rssCli, r.rssWeb, extra)
			}
		}
	}
	t.Logf("loopback load run, %v per run (proxy CPU = both proxies; RSS after the run):\n%s", dur, table.String())
}
