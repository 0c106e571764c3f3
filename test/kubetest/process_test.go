package kubetest

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func startShell(t *testing.T, script string) *process {
	t.Helper()
	p, err := startProcess("child", "/bin/sh", []string{"-c", script}, filepath.Join(t.TempDir(), "child.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.kill)
	return p
}

func TestWaitReady(t *testing.T) {
	unready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "[-]etcd failed", http.StatusServiceUnavailable)
	}))
	defer unready.Close()
	ready := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "ok")
	}))
	defer ready.Close()

	tests := []struct {
		name      string
		script    string
		url       string
		wantErr   []string // substrings; none means success
		wantClash bool
	}{
		{"ready", "sleep 30", ready.URL, nil, false},
		{"port clash", "echo 'listen tcp 127.0.0.1:1: bind: address already in use'; exit 1", unready.URL,
			[]string{"child exited", "exit status 1"}, true},
		{"other exit", "echo 'unknown flag: --x'; exit 3", unready.URL, []string{"child exited", "exit status 3"}, false},
		{"never ready", "sleep 30", unready.URL, []string{"child not ready", "503", "etcd failed", "deadline"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := startShell(t, tt.script)
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			err := waitReady(ctx, p, http.DefaultClient, tt.url, "ok")
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("waitReady succeeded")
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if clash := errors.Is(err, errPortTaken); clash != tt.wantClash {
				t.Errorf("errors.Is(errPortTaken) = %v, want %v", clash, tt.wantClash)
			}
		})
	}
}

func TestKillReapsTheProcessGroup(t *testing.T) {
	// The shell starts a grandchild in its group; kill must end both.
	p := startShell(t, "sleep 300 & echo $! ; wait")
	var grandchild int
	deadline := time.Now().Add(10 * time.Second)
	for grandchild == 0 {
		data, _ := os.ReadFile(p.logPath)
		fmt.Sscan(string(data), &grandchild)
		if time.Now().After(deadline) {
			t.Fatal("no grandchild pid in the log")
		}
		time.Sleep(10 * time.Millisecond)
	}
	p.kill()
	if p.running() {
		t.Fatal("child still running after kill")
	}
	for alive(grandchild) {
		// A killed grandchild is a zombie until init reaps it; it must
		// at least be dead.
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", grandchild))
		if err != nil || strings.Contains(string(stat), ") Z ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("grandchild %d survived: %s", grandchild, stat)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestTailFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var big strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&big, "line %d\n", i)
	}
	tests := []struct {
		name string
		path string
		n    int
		want string
	}{
		{"short", write("short", "a\nb\n"), 5, "a\nb"},
		{"last lines", write("long", "a\nb\nc\nd\n"), 2, "c\nd"},
		{"no final newline", write("nonl", "a\nb"), 1, "b"},
		{"large file", write("big", big.String()), 3, "line 19997\nline 19998\nline 19999"},
		{"missing", filepath.Join(dir, "nope"), 3, "(no log: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tailFile(tt.path, tt.n)
			if !strings.HasPrefix(got, tt.want) || (!strings.HasPrefix(tt.want, "(") && got != tt.want) {
				t.Fatalf("tailFile = %q, want %q", got, tt.want)
			}
		})
	}
}
