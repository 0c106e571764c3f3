package kubetest

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// stateDirPrefix names every state dir under os.TempDir, so that pruneStale
// finds those a killed test binary left behind.
const stateDirPrefix = "meshlet-kubetest-"

// ownerFile holds the pid of the test binary that owns a state dir, or
// keptOwner for a dir kept on purpose (EnvKeep), which only a person removes.
const (
	ownerFile = "owner.pid"
	keptOwner = "kept"
)

func newStateDir() (string, error) {
	dir, err := os.MkdirTemp("", stateDirPrefix)
	if err != nil {
		return "", fmt.Errorf("kubetest: state dir: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o600); err != nil {
		os.RemoveAll(dir)
		return "", fmt.Errorf("kubetest: state dir: %w", err)
	}
	return dir, nil
}

// pruneStale removes state dirs whose test binary is gone. Nothing cleans up
// after a binary killed by SIGKILL or by its -timeout panic; its children die
// with it (Pdeathsig) but the dir stays until the next start here.
func pruneStale() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), stateDirPrefix+"*"))
	for _, dir := range dirs {
		if stale(dir) {
			os.RemoveAll(dir)
		}
	}
}

func stale(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		// A dir is created a moment before its owner file; only an old one
		// without the file is an orphan.
		fi, statErr := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist) && statErr == nil && time.Since(fi.ModTime()) > 10*time.Minute
	}
	if strings.TrimSpace(string(data)) == keptOwner {
		return false
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil || pid <= 0 {
		return true
	}
	return !alive(pid)
}

func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// writeKubeconfig writes an admin kubeconfig with the credentials inline, so
// the file works from any directory and after copying.
func writeKubeconfig(path, server string, caPEM []byte, admin *leaf) (string, error) {
	b64 := base64.StdEncoding.EncodeToString
	content := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kubetest
  cluster:
    server: %s
    certificate-authority-data: %s
users:
- name: kubetest-admin
  user:
    client-certificate-data: %s
    client-key-data: %s
contexts:
- name: kubetest
  context:
    cluster: kubetest
    user: kubetest-admin
    namespace: default
current-context: kubetest
`, server, b64(caPEM), b64(admin.certPEM), b64(admin.keyPEM))
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		return "", fmt.Errorf("kubetest: kubeconfig: %w", err)
	}
	return path, nil
}
