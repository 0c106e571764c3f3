package dev

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// binDir holds meshlet-proxy, meshlet-identity and meshlet-destination built
// by TestMain for the tests that run a real local mesh.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		dir, err := os.MkdirTemp("", "meshlet-dev-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			fmt.Fprintln(os.Stderr, "dev tests: go list:", err)
			return 1
		}
		cmd := exec.Command("go", "build", "-o", dir+"/", "./proxy/cmd/meshlet-proxy", "./identity/cmd/meshlet-identity", "./destination/cmd/meshlet-destination")
		cmd.Dir = strings.TrimSpace(string(root))
		if out, err := cmd.CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "dev tests: building the mesh binaries: %v\n%s", err, out)
			return 1
		}
		binDir = dir
		os.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
		return m.Run()
	}()
	os.Exit(code)
}

// apps are the test's applications, one of each protocol.
type apps struct {
	web     []string // HTTP/1.1 + h2c; answer "<name> <proto>"
	grpc    string
	echo    string // opaque: says "hello\n" first, then echoes
	closers []func()
}

func (a *apps) close() {
	for _, c := range a.closers {
		c()
	}
}

func startWeb(t *testing.T, a *apps, name string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true)
	s := &http.Server{Protocols: &p, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %s", name, r.Proto)
	})}
	go s.Serve(ln) //nolint:errcheck // ends with Close
	a.closers = append(a.closers, func() { s.Close() })
	return ln.Addr().String()
}

func startApps(t *testing.T) *apps {
	a := &apps{}
	a.web = []string{startWeb(t, a, "web-a"), startWeb(t, a, "web-b")}

	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(gl) //nolint:errcheck // ends with Stop
	a.grpc = gl.Addr().String()
	a.closers = append(a.closers, gs.Stop)

	el, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := el.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				io.WriteString(c, "hello\n") // server speaks first
				io.Copy(c, c)
			}()
		}
	}()
	a.echo = el.Addr().String()
	a.closers = append(a.closers, func() { el.Close() })
	return a
}

func meshFile(a *apps, web []string, webUp, grpcUp, echoUp string) string {
	var b strings.Builder
	b.WriteString("services:\n  web:\n    instances:\n")
	for _, w := range web {
		fmt.Fprintf(&b, "      - %s\n", w)
	}
	fmt.Fprintf(&b, "  grpc:\n    instances: [%s]\n    protocol: http2\n", a.grpc)
	fmt.Fprintf(&b, "  echo:\n    instances: [%s]\n    protocol: opaque\n", a.echo)
	fmt.Fprintf(&b, "upstreams:\n  - {service: web, listen: %s}\n  - {service: grpc, listen: %s}\n  - {service: echo, listen: %s}\n", webUp, grpcUp, echoUp)
	return b.String()
}

// syncBuffer is an io.Writer safe for the mesh's output and the test's reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestUpCarriesEveryProtocolOverMTLS(t *testing.T) {
	a := startApps(t)
	defer a.close()
	webUp, grpcUp, echoUp := mustFreePort(), mustFreePort(), mustFreePort()
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	if err := os.WriteFile(file, []byte(meshFile(a, a.web, webUp, grpcUp, echoUp)), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(dir, "state", "logs", "*.log"))
			for _, l := range logs {
				t.Logf("%s:\n%s", filepath.Base(l), tail(l, 8))
			}
		}
	})
	ready := make(chan Status, 1)
	done := make(chan error, 1)
	out := &syncBuffer{}
	go func() {
		done <- Up(ctx, Options{File: file, StateDir: filepath.Join(dir, "state"), Out: out, Grace: time.Second,
			Ready: func(s Status) { ready <- s }})
	}()
	var st Status
	select {
	case st = <-ready:
	case err := <-done:
		t.Fatalf("Up: %v\n%s", err, out)
	case <-time.After(2 * time.Minute):
		t.Fatalf("mesh not ready after 2 minutes\n%s", out)
	}
	if len(st.Proxies) != 7 { // 4 sidecars + 3 upstreams
		t.Fatalf("status lists %d proxies, want 7", len(st.Proxies))
	}

	t.Run("http1", func(t *testing.T) {
		seen := map[string]bool{}
		for i := 0; i < 40 && len(seen) < 2; i++ {
			body := mustGet(t, http.DefaultClient, "http://"+webUp+"/")
			if !strings.HasSuffix(body, "HTTP/1.1") {
				t.Fatalf("app saw %q, want an HTTP/1.1 request", body)
			}
			seen[strings.Fields(body)[0]] = true
		}
		if len(seen) != 2 {
			t.Fatalf("requests reached %v, want both web instances", seen)
		}
	})
	t.Run("h2c", func(t *testing.T) {
		h2c := &http.Client{Transport: h2cTransport()}
		if body := mustGet(t, h2c, "http://"+webUp+"/"); !strings.HasSuffix(body, "HTTP/2.0") {
			t.Fatalf("app saw %q, want an HTTP/2 request", body)
		}
	})
	t.Run("grpc", func(t *testing.T) {
		cc, err := grpc.NewClient(grpcUp, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
		defer rcancel()
		resp, err := healthpb.NewHealthClient(cc).Check(rctx, &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health check through the mesh: %v, %v", resp, err)
		}
	})
	t.Run("opaque server-speaks-first", func(t *testing.T) {
		c, err := net.DialTimeout("tcp", echoUp, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		r := bufio.NewReader(c)
		if line, err := r.ReadString('\n'); err != nil || line != "hello\n" {
			t.Fatalf("banner %q, %v", line, err)
		}
		io.WriteString(c, "ping\n")
		if line, err := r.ReadString('\n'); err != nil || line != "ping\n" {
			t.Fatalf("echo %q, %v", line, err)
		}
	})
	t.Run("mTLS identities", func(t *testing.T) {
		for _, p := range st.Proxies {
			if p.Kind != "sidecar" || p.Service != "web" {
				continue
			}
			tr, err := scrape(ctx, p.Admin)
			if err != nil {
				t.Fatal(err)
			}
			if tr.clients["spiffe://meshlet.local/ns/dev/sa/upstream"] == 0 {
				t.Errorf("%s saw clients %v (plaintext %v), want the upstream's SPIFFE ID over mTLS", p.Name, tr.clients, tr.plain)
			}
		}
	})

	t.Run("hot edit", func(t *testing.T) {
		third := startWeb(t, a, "web-c")
		if err := os.WriteFile(file, []byte(meshFile(a, append(a.web, third), webUp, grpcUp, echoUp)), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for !strings.HasPrefix(mustGet(t, http.DefaultClient, "http://"+webUp+"/"), "web-c") {
			if time.Now().After(deadline) {
				t.Fatalf("the added instance got no request within 30s\n%s", out)
			}
			time.Sleep(20 * time.Millisecond)
		}
		// Remove web-a; requests keep succeeding throughout.
		if err := os.WriteFile(file, []byte(meshFile(a, []string{a.web[1], third}, webUp, grpcUp, echoUp)), 0o644); err != nil {
			t.Fatal(err)
		}
		stopAt := time.Now().Add(5 * time.Second)
		for time.Now().Before(stopAt) {
			mustGet(t, http.DefaultClient, "http://"+webUp+"/")
		}
		for i := 0; i < 30; i++ {
			if body := mustGet(t, http.DefaultClient, "http://"+webUp+"/"); strings.HasPrefix(body, "web-a") {
				t.Fatalf("removed instance still gets requests: %q", body)
			}
		}
		// An invalid edit is reported and changes nothing.
		if err := os.WriteFile(file, []byte("services:\n  web:\n    instancez: []\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		deadline = time.Now().Add(10 * time.Second)
		for !strings.Contains(out.String(), "line 3: field instancez not found") {
			if time.Now().After(deadline) {
				t.Fatalf("invalid edit not reported\n%s", out)
			}
			time.Sleep(50 * time.Millisecond)
		}
		mustGet(t, http.DefaultClient, "http://"+webUp+"/")
	})

	pids := childPIDs(t, dir)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Up after stop: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Up did not return within a minute of the stop")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still runs after the mesh stopped", pid)
		}
	}
	for _, addr := range []string{webUp, grpcUp, echoUp} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Errorf("%s still taken after the stop: %v", addr, err)
			continue
		}
		ln.Close()
	}
}

// childPIDs returns the pids of this process's children whose command line
// mentions dir or a meshlet binary.
func childPIDs(t *testing.T, dir string) []int {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", os.Getpid(), os.Getpid()))
	var pids []int
	if err == nil {
		for _, f := range strings.Fields(string(b)) {
			var pid int
			fmt.Sscan(f, &pid)
			pids = append(pids, pid)
		}
	}
	// Children of other threads are not in that file: look them up by parent.
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		var pid int
		if _, err := fmt.Sscan(e.Name(), &pid); err != nil {
			continue
		}
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(stat)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
		var ppid int
		fmt.Sscan(f[1], &ppid)
		if ppid == os.Getpid() {
			pids = append(pids, pid)
		}
	}
	if len(pids) < 9 { // identity, destination, 7 proxies (after the edit: 4 sidecars + 3 upstreams)
		t.Fatalf("found %d child processes, want at least 9", len(pids))
	}
	return pids
}

func mustGet(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s %s (proxy error %q)", url, resp.Status, b, resp.Header.Get("meshlet-proxy-error"))
	}
	return string(b)
}

func TestUpRefusesBadInputBeforeStartingAnything(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	for _, tc := range []struct{ name, file, want string }{
		{"unknown field", "services:\n  web:\n    instances: [127.0.0.1:9001]\n    colour: blue\n", "line 4: field colour not found"},
		{"bad address", "services:\n  web:\n    instances: [127.0.0.1:9001]\nupstreams:\n  - service: web\n    listen: 127.0.0.1\n", "line 6:"},
		{"port in use", "services:\n  web:\n    instances: [127.0.0.1:9001]\nupstreams:\n  - service: web\n    listen: " + busy.Addr().String() + "\n", "line 6: cannot listen on"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "mesh.yaml")
			os.WriteFile(file, []byte(tc.file), 0o644)
			state := filepath.Join(dir, "state")
			err := Up(context.Background(), Options{File: file, StateDir: state})
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "mesh.yaml") {
				t.Fatalf("error = %v, want one naming mesh.yaml and %q", err, tc.want)
			}
			if _, err := os.Stat(state); !os.IsNotExist(err) {
				t.Fatalf("state dir created (%v): something started before the input was checked", err)
			}
		})
	}
}

func mustFreePort() string {
	a, err := freePort()
	if err != nil {
		panic(err)
	}
	return a
}

// h2cTransport speaks HTTP/2 with prior knowledge over plain TCP.
func h2cTransport() *http.Transport {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p}
}
