//go:build linux

package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// proc is a child process the test owns: its own process group (so a stop
// reaches whatever it started), killed with the test binary (Pdeathsig),
// output in a log file kept for failure reports.
type proc struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error // set before done closes

	stopOnce sync.Once
}

// procs tracks every process a run started, to check none outlives it.
type procs struct {
	mu   sync.Mutex
	all  []*proc
	logs string // directory of the log files
}

// start runs argv with env (added to the test's environment) and stops it
// in t's cleanup.
func (ps *procs) start(t *testing.T, name string, env []string, argv ...string) *proc {
	t.Helper()
	logPath := filepath.Join(ps.logs, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("e2e: start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.all = append(ps.all, p)
	ps.mu.Unlock()
	t.Cleanup(func() {
		p.stop(5 * time.Second)
		if t.Failed() {
			t.Logf("--- %s (%s), last lines:\n%s", name, strings.Join(argv, " "), p.tail(30))
		}
	})
	return p
}

// stop sends SIGTERM to the process group, then SIGKILL after grace.
func (p *proc) stop(grace time.Duration) {
	p.stopOnce.Do(func() {
		pgid := p.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(grace):
		}
		// The group may hold more than the leader; kill it in any case.
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	})
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *proc) tail(n int) string {
	b, err := os.ReadFile(p.logPath)
	if err != nil {
		return err.Error()
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// leftovers lists processes started by the run that still exist, by their
// process group (a group outlives its leader when children remain).
func (ps *procs) leftovers() []string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var left []string
	for _, p := range ps.all {
		if !p.exited() {
			left = append(left, fmt.Sprintf("process %s (pid %d) still running", p.name, p.cmd.Process.Pid))
			continue
		}
		if err := syscall.Kill(-p.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			left = append(left, fmt.Sprintf("process group of %s (%d) still has members", p.name, p.cmd.Process.Pid))
		}
	}
	return left
}
