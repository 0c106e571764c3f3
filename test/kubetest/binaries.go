package kubetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"time"
)

// Environment variables the harness reads.
const (
	// EnvBinDir names the folder holding kube-apiserver and etcd. `make test`
	// sets it to what test/kube/build.sh prints. When it is set, missing
	// binaries are an error, not a skip.
	EnvBinDir = "MESHLET_KUBE_BIN_DIR"
	// EnvCache overrides the cache root test/kube/build.sh builds into
	// (default ${XDG_CACHE_HOME:-$HOME/.cache}/meshlet/kube).
	EnvCache = "MESHLET_KUBE_CACHE"
	// EnvKeep, when "1", keeps each cluster's state dir (PKI, logs, etcd data)
	// after Stop, and logs where it is.
	EnvKeep = "MESHLET_KUBETEST_KEEP"
)

// ErrNoBinaries means kube-apiserver and etcd were not found; Start and
// Shared turn it into a skip. Build them with `make kube-bins`.
var ErrNoBinaries = errors.New("kubetest: no kube-apiserver/etcd binaries; run `make kube-bins` (or `make test`), or set " + EnvBinDir)

// Binaries says where the two programs are.
type Binaries struct {
	Dir       string // the folder; both programs are in it
	APIServer string
	Etcd      string
	// ControllerManager is kube-controller-manager, "" when the build has
	// none (builds before it was added); only Options.ControllerManager
	// needs it.
	ControllerManager string
	FromCache         bool   // found in the build cache rather than through EnvBinDir
	ExactBuild        bool   // the cache entry matches the current wrapper module and Go version
	Note              string // how they were found, for a test log
}

// FindBinaries locates kube-apiserver and etcd: EnvBinDir if set, else the
// cache entry for the current key (see cacheKey), else the newest complete
// entry in the cache. It returns an error wrapping ErrNoBinaries when there
// are none.
func FindBinaries() (Binaries, error) {
	if dir := os.Getenv(EnvBinDir); dir != "" {
		b := binariesIn(dir)
		if !complete(b) {
			return Binaries{}, fmt.Errorf("kubetest: %s=%s holds no executable kube-apiserver and etcd", EnvBinDir, dir)
		}
		b.Note = "from " + EnvBinDir
		return b, nil
	}
	root, err := cacheRoot()
	if err != nil {
		return Binaries{}, fmt.Errorf("%w (%v)", ErrNoBinaries, err)
	}
	if tools, err := findToolsModule(); err == nil {
		if key, err := cacheKey(tools, goVersion()); err == nil {
			b := binariesIn(filepath.Join(root, key))
			if complete(b) {
				b.FromCache, b.ExactBuild, b.Note = true, true, "from the build cache"
				return b, nil
			}
		}
	}
	// The key can differ from build.sh's when the test binary was built by a
	// different Go than the one on PATH, or when run outside the repository.
	// Any complete build is better than skipping.
	if b, ok := newestBuild(root); ok {
		b.FromCache, b.Note = true, "newest complete build in the cache (the key for the current go.mod/Go version has none)"
		return b, nil
	}
	return Binaries{}, fmt.Errorf("%w (looked in %s)", ErrNoBinaries, root)
}

func binariesIn(dir string) Binaries {
	b := Binaries{Dir: dir, APIServer: filepath.Join(dir, "kube-apiserver"), Etcd: filepath.Join(dir, "etcd")}
	if cm := filepath.Join(dir, "kube-controller-manager"); executable(cm) {
		b.ControllerManager = cm
	}
	return b
}

func complete(b Binaries) bool { return executable(b.APIServer) && executable(b.Etcd) }

func executable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

func cacheRoot() (string, error) {
	if root := os.Getenv(EnvCache); root != "" {
		return root, nil
	}
	base := os.Getenv("XDG_CACHE_HOME")
	if base == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("kubetest: no cache dir: %w", err)
		}
		base = filepath.Join(home, ".cache")
	}
	return filepath.Join(base, "meshlet", "kube"), nil
}

// toolsModule is the wrapper module's folder, relative to the repository root.
const toolsModule = "test/kube/tools"

// findToolsModule walks up from the working directory (a test runs in its
// package's folder) to the repository holding the wrapper module.
func findToolsModule() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("kubetest: %w", err)
	}
	for {
		tools := filepath.Join(dir, filepath.FromSlash(toolsModule))
		if _, err := os.Stat(filepath.Join(tools, "go.mod")); err == nil {
			return tools, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("kubetest: no %s above the working directory", toolsModule)
		}
		dir = parent
	}
}

// cacheKey is test/kube/build.sh's key: the first 16 hex digits of the
// SHA-256 of go.mod, go.sum and the `go version` line (with its newline),
// concatenated. Keep the two in sync; TestCacheKeyMatchesBuildScript checks.
func cacheKey(toolsDir, goVersionLine string) (string, error) {
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum"} {
		data, err := os.ReadFile(filepath.Join(toolsDir, name))
		if err != nil {
			return "", fmt.Errorf("kubetest: cache key: %w", err)
		}
		h.Write(data)
	}
	h.Write([]byte(strings.TrimRight(goVersionLine, "\n") + "\n"))
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// goVersion is what `go version` prints, as build.sh sees it. Asking the go
// command (as build.sh does) matters when GOTOOLCHAIN picks another Go; the
// runtime's own version is the fallback when there is no go command. Asked
// once per test binary.
var goVersion = sync.OnceValue(goVersionUncached)

func goVersionUncached() string {
	goCmd := os.Getenv("GO")
	if goCmd == "" {
		goCmd = "go"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, goCmd, "version").Output()
	if err == nil {
		return strings.TrimSpace(string(out))
	}
	return fmt.Sprintf("go version %s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// newestBuild returns the most recently built complete cache entry. Entries
// in progress are hidden (".build-*") until build.sh renames them.
func newestBuild(root string) (Binaries, bool) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return Binaries{}, false
	}
	type cand struct {
		b   Binaries
		mod time.Time
	}
	var cands []cand
	for _, e := range entries {
		if !e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		b := binariesIn(filepath.Join(root, e.Name()))
		fi, err := os.Stat(b.APIServer)
		if err != nil || !complete(b) {
			continue
		}
		cands = append(cands, cand{b, fi.ModTime()})
	}
	if len(cands) == 0 {
		return Binaries{}, false
	}
	sort.Slice(cands, func(i, j int) bool { return cands[i].mod.After(cands[j].mod) })
	return cands[0].b, true
}
