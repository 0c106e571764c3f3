//go:build linux

package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// EnvBinDir names a folder holding the meshlet binaries already built
// (`make build` puts them in bin/); without it the test builds them with
// `go build` into a temporary folder.
const EnvBinDir = "MESHLET_E2E_BIN_DIR"

var components = []string{"meshlet-proxy", "meshlet-identity", "meshlet-destination", "meshlet-injector"}

var componentPkgs = map[string]string{
	"meshlet-proxy":       "./proxy/cmd/meshlet-proxy",
	"meshlet-identity":    "./identity/cmd/meshlet-identity",
	"meshlet-destination": "./destination/cmd/meshlet-destination",
	"meshlet-injector":    "./injector/cmd/meshlet-injector",
}

// binaries returns the folder of the component binaries. The folder must be
// searchable by the proxy's UID, which runs meshlet-proxy from it.
func binaries(t *testing.T) string {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		dir, err := filepath.Abs(dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range components {
			if _, err := os.Stat(filepath.Join(dir, c)); err != nil {
				t.Fatalf("e2e: %s=%s: %v", EnvBinDir, dir, err)
			}
		}
		return reachable(t, dir)
	}
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("e2e: go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	dir, err := os.MkdirTemp("", "meshlet-e2e-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"build", "-o", dir + "/"}
	for _, c := range components {
		args = append(args, componentPkgs[c])
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	begin := time.Now()
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("e2e: go %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("built %d binaries in %v", len(components), time.Since(begin).Round(time.Second))
	return dir
}

// reachable returns a folder of the binaries in dir that the proxy's UID
// can run meshlet-proxy from whatever dir's parents allow (a checkout under
// /root is not searchable by UID 2102): meshlet-proxy is copied into a new
// 0755 folder, the others (run as root) are linked.
func reachable(t *testing.T, dir string) string {
	out, err := os.MkdirTemp("", "meshlet-e2e-bin-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(out) })
	if err := os.Chmod(out, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range components {
		if c != "meshlet-proxy" {
			if err := os.Symlink(filepath.Join(dir, c), filepath.Join(out, c)); err != nil {
				t.Fatal(err)
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, c))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, c), b, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// requireHost skips unless the machine can run pods as namespaces.
func requireHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("e2e: needs root (network namespaces, iptables, running the proxy as UID 2102)")
	}
	for _, bin := range []string{"ip", "iptables", "iptables-save", "setpriv"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("e2e: needs %s (scripts/deps.sh installs iproute2, iptables and util-linux)", bin)
		}
	}
	if _, err := exec.LookPath("go"); err != nil && os.Getenv(EnvBinDir) == "" {
		t.Skipf("e2e: needs the go command to build the binaries, or %s", EnvBinDir)
	}
}
