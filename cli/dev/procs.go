package dev

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// procSpec says how to run one child process.
type procSpec struct {
	// Name is unique in the mesh and names the log file: "identity",
	// "destination", "sidecar/web-0", "upstream/web-0".
	Name string
	Bin  string
	Args []string
	Env  []string
	// Admin is the host:port serving /ready; "" means ready once started.
	Admin string
}

// proc is a running child.
type proc struct {
	spec    procSpec
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed when the process has exited
	err     error         // its exit status, once done is closed
}

// startProc starts spec with its output in logDir. The child is killed if
// meshctl dies without stopping it (Pdeathsig), so a crash leaves nothing.
func startProc(spec procSpec, logDir string) (*proc, error) {
	logPath := filepath.Join(logDir, strings.ReplaceAll(spec.Name, "/", "_")+".log")
	log, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("dev: %s: %w", spec.Name, err)
	}
	cmd := exec.Command(spec.Bin, spec.Args...)
	cmd.Env = append(os.Environ(), spec.Env...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		log.Close()
		return nil, fmt.Errorf("dev: starting %s (%s): %w", spec.Name, spec.Bin, err)
	}
	p := &proc{spec: spec, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		log.Close()
		close(p.done)
	}()
	return p, nil
}

// waitReady polls the admin /ready endpoint until it answers 200, the
// process exits, or the timeout passes.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	if p.spec.Admin == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: time.Second}
	url := "http://" + p.spec.Admin + "/ready"
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-p.done:
			return fmt.Errorf("dev: %s exited during start-up (%v); its log %s ends:\n%s", p.spec.Name, p.err, p.logPath, tail(p.logPath, 15))
		case <-ctx.Done():
			return fmt.Errorf("dev: %s not ready after %v; its log %s ends:\n%s", p.spec.Name, timeout, p.logPath, tail(p.logPath, 15))
		case <-tick.C:
		}
	}
}

// stop asks the process to drain (SIGTERM) and kills it after grace.
func (p *proc) stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
	case <-t.C:
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// exited reports whether the process has ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// tail returns the last n lines of the file at path.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	lines := bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return "  " + string(bytes.Join(lines, []byte("\n  ")))
}

// findBinary looks for a meshlet binary next to the running executable
// (bin/ after `make build`), then on PATH.
func findBinary(name string) (string, error) {
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("dev: %s not found next to meshctl or on PATH (run `make build`): %w", name, errors.Unwrap(err))
	}
	return p, nil
}
