package kubetest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
)

// process is one child (etcd or kube-apiserver) with its output in a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{} // closed once Wait has returned
	waitErr error         // set before exited is closed
}

// startProcess starts path with args, output appended to logPath.
//
// The child gets Pdeathsig=SIGKILL, so it dies with the test binary even when
// that is killed outright (a -timeout panic, SIGKILL), when no cleanup can
// run. The kernel sends that signal when the *thread* that forked the child
// exits, not the process; Go may retire a thread whose goroutine locked it,
// and a test doing network-namespace work locks threads. So the fork happens
// on a goroutine of its own that locks a fresh thread and keeps it, locked,
// until the child has exited: the thread lives exactly as long as the child
// may. The child also gets its own process group, so a terminal's ^C reaches
// the test binary, which stops children in order, rather than all at once.
func startProcess(name, path string, args []string, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("kubetest: %s log: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, exited: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		// Not unlocked: when this goroutine ends, Go retires the thread,
		// which is fine since the child is gone by then.
		defer close(p.exited)
		defer logFile.Close()
		cmd := exec.Command(path, args...)
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			p.waitErr = err
			started <- fmt.Errorf("kubetest: start %s: %w", name, err)
			return
		}
		p.cmd = cmd // published to the caller by the send below
		started <- nil
		p.waitErr = cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return p, nil
}

func (p *process) pid() int { return p.cmd.Process.Pid }

// running reports whether the child has not exited yet.
func (p *process) running() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// kill ends the child's process group with SIGKILL and waits until the child
// is reaped. The harness does not need a graceful stop: the state is thrown
// away, and SIGKILL is quick and certain.
func (p *process) kill() {
	if p.running() {
		// The group first (-pid), in case the child forked; then the child
		// itself, should it have left its group.
		_ = syscall.Kill(-p.pid(), syscall.SIGKILL)
		_ = p.cmd.Process.Kill()
	}
	<-p.exited
}

// exitError describes how the child ended, for a start-up failure.
func (p *process) exitError() error {
	if p.running() {
		return nil
	}
	if p.waitErr == nil {
		return fmt.Errorf("kubetest: %s exited", p.name)
	}
	return fmt.Errorf("kubetest: %s exited: %w", p.name, p.waitErr)
}

// tail returns the last n lines of the child's log.
func (p *process) tail(n int) string {
	return tailFile(p.logPath, n)
}

func tailFile(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	// The tail of a large log is all that is wanted; read at most 64 KiB.
	const max = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > max {
		if _, err := f.Seek(-max, io.SeekEnd); err != nil {
			return fmt.Sprintf("(log: %v)", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Sprintf("(log: %v)", err)
	}
	lines := strings.Split(string(bytes.TrimRight(data, "\n")), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
