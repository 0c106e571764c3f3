//go:build linux

package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLeftoversDetected shows the tear-down check can fail: a namespace
// with the run's prefix, and a process inside it, are reported until they
// are gone.
func TestLeftoversDetected(t *testing.T) {
	requireHost(t)
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	n := &network{prefix: "e2el" + hex.EncodeToString(rnd[:]), nsInos: map[string]uint64{}}
	ps := &procs{logs: t.TempDir()}
	name := n.prefix + "-pod"
	mustRun(t, "ip", "netns", "add", name)
	deleted := false
	t.Cleanup(func() {
		if !deleted {
			mustRun(t, "ip", "netns", "del", name)
		}
	})
	ino, err := netnsInode(filepath.Join(netnsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	n.nsInos[name] = ino
	p := ps.start(t, "sleeper", nil, "ip", "netns", "exec", name, "sleep", "60")
	deadline := time.Now().Add(10 * time.Second)
	var left []string
	for time.Now().Before(deadline) {
		left = append(n.leftovers(), ps.leftovers()...)
		if len(left) >= 3 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	all := strings.Join(left, "\n")
	for _, want := range []string{"network namespace " + name, "in namespace " + name, "process sleeper"} {
		if !strings.Contains(all, want) {
			t.Errorf("leftovers do not mention %q:\n%s", want, all)
		}
	}
	p.stop(time.Second)
	mustRun(t, "ip", "netns", "del", name)
	deleted = true
	if left := append(n.leftovers(), ps.leftovers()...); len(left) > 0 {
		t.Errorf("after the clean-up, still reported: %v", left)
	}
}
