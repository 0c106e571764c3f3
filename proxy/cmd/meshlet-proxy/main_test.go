package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binPath is the binary TestMain built, "" under -short.
var binPath string

func TestMain(m *testing.M) {
	flag.Parse()
	if testing.Short() {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "meshlet-proxy-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		fmt.Fprintln(os.Stderr, "the binary tests need the go command on PATH:", err)
		os.Exit(1)
	}
	binPath = filepath.Join(dir, "meshlet-proxy")
	cmd := exec.Command(gobin, "build", "-o", binPath, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// build returns the binary TestMain compiled.
func build(t *testing.T) string {
	t.Helper()
	if binPath == "" {
		t.Skip("needs the binary, not built under -short")
	}
	return binPath
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestSIGTERMDrains runs the real binary: after SIGTERM it refuses new
// connections, keeps an open opaque connection working until the grace
// period ends, then closes it and exits 0.
func TestSIGTERMDrains(t *testing.T) {
	bin := build(t)
	echoLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer echoLn.Close()
	go func() {
		for {
			c, err := echoLn.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); io.Copy(c, c) }()
		}
	}()
	inbound, outbound, adminAddr := freePort(t), freePort(t), freePort(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(),
		"MESHLET_PROXY_INBOUND_ADDR="+inbound,
		"MESHLET_PROXY_OUTBOUND_ADDR="+outbound,
		"MESHLET_PROXY_ADMIN_ADDR="+adminAddr,
		"MESHLET_PROXY_INBOUND_TARGET="+echoLn.Addr().String(),
		"MESHLET_PROXY_SHUTDOWN_GRACE=2s",
	)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("proxy log:\n%s", stderr.String())
		}
	}()

	waitFor(t, "ready", func() bool {
		resp, err := http.Get("http://" + adminAddr + "/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	conn, err := net.Dial("tcp", inbound)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echo(t, conn, "\x00before")

	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "new connections refused", func() bool {
		c, err := net.DialTimeout("tcp", inbound, time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	echo(t, conn, "\x00during the grace period")
	select {
	case err := <-exited:
		t.Fatalf("exited (%v) with a connection open, %v after SIGTERM", err, time.Since(start))
	default:
	}
	select {
	case err := <-exited:
		exited <- err // for the deferred cleanup
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
		if el := time.Since(start); el < 2*time.Second-200*time.Millisecond {
			t.Errorf("exited %v after SIGTERM, before the 2s grace period", el)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("no exit after the grace period")
	}
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := conn.Read(make([]byte, 1)); err == nil {
		t.Error("connection still open after the proxy exited")
	}
	if !strings.Contains(stderr.String(), "grace period over") {
		t.Errorf("log does not say the grace period ended:\n%s", stderr.String())
	}
}

func TestBadEnvironmentExits1(t *testing.T) {
	bin := build(t)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), "MESHLET_PROXY_DETECT_TIMEOUT=fast")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("exit %v, want status 1", err)
	}
	if !strings.Contains(string(out), "MESHLET_PROXY_DETECT_TIMEOUT") {
		t.Errorf("error does not name the variable: %s", out)
	}
}

func TestInitDryRun(t *testing.T) {
	bin := build(t)
	out, err := exec.Command(bin, "init", "--dry-run").CombinedOutput()
	if err != nil {
		t.Fatalf("init --dry-run: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "iptables") || !strings.Contains(string(out), "4143") {
		t.Errorf("init --dry-run printed no iptables rules for the inbound port:\n%s", out)
	}
}

func echo(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || string(got) != msg {
		t.Fatalf("echo %q: %q, %v", msg, got, err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRuntimeSettings checks, on the binary's own Go metrics, that it runs
// on one core and collects at GOGC=200 by default, and that CORES and an
// explicit GOGC override both.
func TestRuntimeSettings(t *testing.T) {
	bin := build(t)
	var base []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") && !strings.HasPrefix(kv, "GOMAXPROCS=") && !strings.HasPrefix(kv, "MESHLET_PROXY_") {
			base = append(base, kv)
		}
	}
	for _, tc := range []struct {
		env        []string
		procs, gog string
	}{
		{nil, "1", "200"},
		{[]string{"MESHLET_PROXY_CORES=2", "GOGC=50"}, "2", "50"},
	} {
		adminAddr := freePort(t)
		cmd := exec.Command(bin)
		cmd.Env = append(append(base[:len(base):len(base)],
			"MESHLET_PROXY_INBOUND_ADDR="+freePort(t),
			"MESHLET_PROXY_OUTBOUND_ADDR="+freePort(t),
			"MESHLET_PROXY_ADMIN_ADDR="+adminAddr,
			"MESHLET_PROXY_IPV6=false",
		), tc.env...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var metrics string
		waitFor(t, "metrics", func() bool {
			resp, err := http.Get("http://" + adminAddr + "/metrics")
			if err != nil {
				return false
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			metrics = string(b)
			return resp.StatusCode == 200
		})
		cmd.Process.Kill()
		cmd.Wait()
		for name, want := range map[string]string{"go_sched_gomaxprocs_threads": tc.procs, "go_gc_gogc_percent": tc.gog} {
			if !strings.Contains(metrics, "\n"+name+" "+want+"\n") {
				t.Errorf("env %v: want %s %s; metrics have:\n%s", tc.env, name, want, grepLines(metrics, name))
			}
		}
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
