package kubetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// binariesOrSkip is what Start does before it starts anything.
func binariesOrSkip(t *testing.T) Binaries {
	t.Helper()
	b, err := FindBinaries()
	if errors.Is(err, ErrNoBinaries) {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// footprint is what a cluster occupies on the machine.
type footprint struct {
	Dir   string
	Pids  []int
	Ports []int
}

func (c *Cluster) footprint() footprint {
	c.mu.Lock()
	defer c.mu.Unlock()
	fp := footprint{Dir: c.dir, Pids: []int{c.etcd.pid(), c.apiserver.pid()}, Ports: c.ports}
	if c.kcm != nil {
		fp.Pids = append(fp.Pids, c.kcm.pid())
	}
	return fp
}

// processesUsing lists the pids whose command line mentions dir: every
// process of a cluster has its state dir in its flags.
func processesUsing(dir string) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), dir) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func portFree(port int) bool {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

// checkRunning asserts that the footprint is really in use, so that the
// checks of its absence afterwards mean something.
func checkRunning(t *testing.T, fp footprint) {
	t.Helper()
	if got := processesUsing(fp.Dir); len(got) != len(fp.Pids) {
		t.Fatalf("processes using %s: %v, want the cluster's %v", fp.Dir, got, fp.Pids)
	}
	for _, pid := range fp.Pids {
		if !alive(pid) {
			t.Fatalf("pid %d not running", pid)
		}
	}
	if len(fp.Ports) != 3 {
		t.Fatalf("ports = %v, want etcd client, etcd peer, apiserver", fp.Ports)
	}
	for _, port := range fp.Ports {
		if portFree(port) {
			t.Fatalf("port %d is free while the cluster runs", port)
		}
	}
	// The ports the harness knows must be all the children listen on, or
	// checkGone would not look at them all.
	listening := listeningSockets()
	got := map[int]bool{}
	for _, pid := range fp.Pids {
		for _, port := range listeningPorts(pid, listening) {
			got[port] = true
		}
	}
	want := map[int]bool{}
	for _, port := range fp.Ports {
		want[port] = true
	}
	if !maps.Equal(got, want) {
		t.Fatalf("the children listen on %v, the harness knows %v", slices.Sorted(maps.Keys(got)), fp.Ports)
	}
}

// checkGone waits (a killed child is reaped asynchronously) until no process
// of the cluster is left and its ports can be bound again.
func checkGone(t *testing.T, fp footprint) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		procs := processesUsing(fp.Dir)
		var busy []int
		for _, port := range fp.Ports {
			if portFree(port) {
				continue
			}
			// Other test binaries run at the same time and may have
			// taken a freed port already: only a listener of ours, or
			// one without an owner process, counts.
			owners := portOwners(port)
			if len(owners) == 0 || slices.ContainsFunc(owners, func(pid int) bool { return slices.Contains(fp.Pids, pid) }) {
				busy = append(busy, port)
			}
		}
		if len(procs) == 0 && len(busy) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after stop: processes %v still run, ports %v still bound", procs, busy)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func checkDirRemoved(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("state dir %s: %v, want it removed", dir, err)
	}
}

func TestStartStopLeavesNothing(t *testing.T) {
	b := binariesOrSkip(t)
	c, err := New(context.Background(), Options{Binaries: b, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	fp := c.footprint()
	checkRunning(t, fp)
	if _, err := c.Client().Discovery().ServerVersion(); err != nil {
		c.Stop()
		t.Fatal(err)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	checkGone(t, fp)
	checkDirRemoved(t, fp.Dir)
	if err := c.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
}

func TestStartFailureReportsLogAndCleansUp(t *testing.T) {
	b := binariesOrSkip(t)
	before := ownStateDirs(t)
	_, err := New(context.Background(), Options{
		Binaries:           b,
		ExtraAPIServerArgs: []string{"--no-such-flag=1"},
		StartTimeout:       time.Minute,
	})
	if err == nil {
		t.Fatal("New with a bad apiserver flag succeeded")
	}
	for _, want := range []string{"kube-apiserver exited", "kube-apiserver.log", "no-such-flag"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if after := ownStateDirs(t); len(after) != len(before) {
		t.Fatalf("state dirs of this process: before %v, after %v", before, after)
	}
}

// ownStateDirs lists the state dirs this test binary owns.
func ownStateDirs(t *testing.T) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(os.TempDir(), stateDirPrefix+"*"))
	if err != nil {
		t.Fatal(err)
	}
	var own []string
	for _, d := range dirs {
		data, _ := os.ReadFile(filepath.Join(d, ownerFile))
		if strings.TrimSpace(string(data)) == strconv.Itoa(os.Getpid()) {
			own = append(own, d)
		}
	}
	return own
}

// helperEnv makes the test binary a helper that starts a cluster, reports
// its footprint as JSON on stdout and waits to be signalled.
const helperEnv = "MESHLET_KUBETEST_HELPER"

// helperMain runs the helper when helperEnv is set; it never returns then.
func helperMain() bool {
	if os.Getenv(helperEnv) != "start-and-wait" {
		return false
	}
	c, err := New(context.Background(), Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	if err := json.NewEncoder(os.Stdout).Encode(c.footprint()); err != nil {
		os.Exit(4)
	}
	select {} // until a signal ends the process
}

// startHelper runs the helper with tmpDir as its TMPDIR (where its state dir
// goes, out of sight of other test binaries pruning stale ones) and returns
// its footprint.
func startHelper(t *testing.T, b Binaries, tmpDir string) (*exec.Cmd, footprint) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=start-and-wait", EnvBinDir+"="+b.Dir, "TMPDIR="+tmpDir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadBytes('\n')
	if err != nil {
		t.Fatalf("helper report: %v", err)
	}
	var fp footprint
	if err := json.Unmarshal(line, &fp); err != nil {
		t.Fatalf("helper report %q: %v", line, err)
	}
	return cmd, fp
}

// An interrupted test binary stops its clusters and dies by the signal.
func TestSignalStopsClusters(t *testing.T) {
	b := binariesOrSkip(t)
	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
		t.Run(sig.String(), func(t *testing.T) {
			cmd, fp := startHelper(t, b, t.TempDir())
			checkRunning(t, fp)
			if err := cmd.Process.Signal(sig); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			var exit *exec.ExitError
			if !errors.As(err, &exit) {
				t.Fatalf("helper exit: %v, want death by %v", err, sig)
			}
			if ws := exit.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != sig {
				t.Fatalf("helper exit status %v, want death by %v", ws, sig)
			}
			checkGone(t, fp)
			checkDirRemoved(t, fp.Dir)
		})
	}
}

// A test binary killed outright (SIGKILL, or the panic of -timeout) runs no
// cleanup: its children still die with it, and the next start removes the
// state dir it left.
func TestKilledBinaryLeavesNoProcess(t *testing.T) {
	b := binariesOrSkip(t)
	tmp := t.TempDir()
	cmd, fp := startHelper(t, b, tmp)
	checkRunning(t, fp)
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	cmd.Wait()
	checkGone(t, fp)
	if _, err := os.Stat(fp.Dir); err != nil {
		t.Fatalf("state dir of the killed binary: %v, want it left behind", err)
	}
	t.Setenv("TMPDIR", tmp) // where pruneStale looks
	pruneStale()
	checkDirRemoved(t, fp.Dir)
}

func TestPruneStaleKeepsLiveDirs(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	// A pid that surely belongs to no process: one that has exited and
	// been reaped.
	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Fatal(err)
	}
	deadPid := done.ProcessState.Pid()
	old := time.Now().Add(-time.Hour)
	tests := []struct {
		name      string
		owner     string // owner file content; "-" for no file
		mtime     time.Time
		wantKept  bool
		dirPrefix string
	}{
		{"owned by this process", strconv.Itoa(os.Getpid()), time.Now(), true, stateDirPrefix},
		{"owner gone", strconv.Itoa(deadPid), time.Now(), false, stateDirPrefix},
		{"owner file garbage", "x", time.Now(), false, stateDirPrefix},
		{"kept on purpose", keptOwner, old, true, stateDirPrefix},
		{"no owner file yet", "-", time.Now(), true, stateDirPrefix},
		{"no owner file, old", "-", old, false, stateDirPrefix},
		{"someone else's dir", strconv.Itoa(deadPid), time.Now(), true, "other-"},
	}
	dirs := make([]string, len(tests))
	for i, tt := range tests {
		dir, err := os.MkdirTemp(tmp, tt.dirPrefix)
		if err != nil {
			t.Fatal(err)
		}
		if tt.owner != "-" {
			if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(tt.owner+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Chtimes(dir, tt.mtime, tt.mtime); err != nil {
			t.Fatal(err)
		}
		dirs[i] = dir
	}
	pruneStale()
	for i, tt := range tests {
		_, err := os.Stat(dirs[i])
		if kept := err == nil; kept != tt.wantKept {
			t.Errorf("%s: kept = %v, want %v", tt.name, kept, tt.wantKept)
		}
	}
}

// After Stop no goroutine of the harness is left: packages whose tests
// check for leaked goroutines can use it.
func TestStopLeavesNoGoroutine(t *testing.T) {
	b := binariesOrSkip(t)
	// Shared may be running from an earlier test in this binary; its
	// goroutines are part of the baseline, which is fine: it stays put.
	before := runtime.NumGoroutine()
	c, err := New(context.Background(), Options{Binaries: b})
	if err != nil {
		t.Fatal(err)
	}
	if got := runtime.NumGoroutine(); got <= before {
		t.Fatalf("goroutines while running: %d, before: %d; the check below would mean nothing", got, before)
	}
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d after Stop, %d before:\n%s", runtime.NumGoroutine(), before, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
