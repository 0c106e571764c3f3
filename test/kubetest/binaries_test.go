package kubetest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The Go side must find what build.sh built: both compute the same key.
func TestCacheKeyMatchesBuildScript(t *testing.T) {
	tools, err := findToolsModule()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(tools, "..", "build.sh")
	out, err := exec.Command(script, "--key").Output()
	if err != nil {
		t.Fatalf("%s --key: %v", script, err)
	}
	want := strings.TrimSpace(string(out))
	got, err := cacheKey(tools, goVersion())
	if err != nil {
		t.Fatal(err)
	}
	if got != want || len(got) != 16 {
		t.Fatalf("cacheKey = %q, build.sh --key = %q", got, want)
	}
	// The key must move with the Go version, or a new Go reuses old builds.
	other, err := cacheKey(tools, "go version go0.0.0 linux/amd64")
	if err != nil {
		t.Fatal(err)
	}
	if other == got {
		t.Fatalf("cacheKey ignores the Go version: %q", got)
	}
}

func fakeBuild(t *testing.T, dir string, age time.Duration) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"kube-apiserver", "etcd"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/true\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		mt := time.Now().Add(-age)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
}

func TestFindBinaries(t *testing.T) {
	tools, err := findToolsModule()
	if err != nil {
		t.Fatal(err)
	}
	key, err := cacheKey(tools, goVersion())
	if err != nil {
		t.Fatal(err)
	}
	// setup fills the cache and returns MESHLET_KUBE_BIN_DIR and the folder
	// FindBinaries must pick ("" when it must fail).
	tests := []struct {
		name     string
		setup    func(t *testing.T, cache string) (env, want string)
		wantSkip bool // the failure is ErrNoBinaries (a skip), not a hard error
	}{{
		name: "bin dir from env",
		setup: func(t *testing.T, cache string) (string, string) {
			d := filepath.Join(t.TempDir(), "bins")
			fakeBuild(t, d, 0)
			fakeBuild(t, filepath.Join(cache, key), 0) // env wins over the cache
			return d, d
		},
	}, {
		name: "env dir without binaries fails rather than skips",
		setup: func(t *testing.T, cache string) (string, string) {
			fakeBuild(t, filepath.Join(cache, key), 0)
			return t.TempDir(), ""
		},
	}, {
		name:     "empty cache skips",
		setup:    func(t *testing.T, cache string) (string, string) { return "", "" },
		wantSkip: true,
	}, {
		name: "exact key preferred over a newer other build",
		setup: func(t *testing.T, cache string) (string, string) {
			fakeBuild(t, filepath.Join(cache, key), time.Hour)
			fakeBuild(t, filepath.Join(cache, "0123456789abcdef"), 0)
			return "", filepath.Join(cache, key)
		},
	}, {
		name: "newest complete build when the key has none",
		setup: func(t *testing.T, cache string) (string, string) {
			fakeBuild(t, filepath.Join(cache, "aaaaaaaaaaaaaaaa"), 2*time.Hour)
			fakeBuild(t, filepath.Join(cache, "bbbbbbbbbbbbbbbb"), time.Hour)
			return "", filepath.Join(cache, "bbbbbbbbbbbbbbbb")
		},
	}, {
		name: "builds in progress and incomplete dirs are ignored",
		setup: func(t *testing.T, cache string) (string, string) {
			fakeBuild(t, filepath.Join(cache, ".build-"+key+".x"), 0)
			half := filepath.Join(cache, "cccccccccccccccc")
			fakeBuild(t, half, 0)
			if err := os.Remove(filepath.Join(half, "etcd")); err != nil {
				t.Fatal(err)
			}
			return "", ""
		},
		wantSkip: true,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cache := t.TempDir()
			t.Setenv(EnvCache, cache)
			env, want := tt.setup(t, cache)
			t.Setenv(EnvBinDir, env)
			b, err := FindBinaries()
			if want == "" {
				if err == nil {
					t.Fatalf("FindBinaries = %+v, want an error", b)
				}
				if skip := errors.Is(err, ErrNoBinaries); skip != tt.wantSkip {
					t.Fatalf("error %q: skip = %v, want %v", err, skip, tt.wantSkip)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if b.Dir != want || b.APIServer != filepath.Join(want, "kube-apiserver") || b.Etcd != filepath.Join(want, "etcd") {
				t.Fatalf("FindBinaries = %+v, want dir %s", b, want)
			}
		})
	}
}

func TestSkipMessageSaysHowToBuild(t *testing.T) {
	if !strings.Contains(ErrNoBinaries.Error(), "make kube-bins") {
		t.Fatalf("ErrNoBinaries = %q", ErrNoBinaries)
	}
}
