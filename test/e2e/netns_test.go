//go:build linux

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The network: one "node" namespace holds a bridge (br0, nodeIP/24) and the
// control plane's relays; every pod namespace is joined to the bridge by a
// veth pair made inside the node namespace (its pod end, eth0, moved into
// the pod). Pods have a route to the pod subnet (on link) and one to the
// service CIDR via the node; there is no default route anywhere and nothing
// is ever configured in the host's own namespace, so no packet of the test
// can leave the machine.
const (
	podSubnetPrefix = "10.244.0." // .1 is the node, pods from .10
	nodeIP          = "10.244.0.1"
	serviceCIDR     = "10.96.0.0/12" // kubetest.ServiceCIDR
)

// netnsDir is where `ip netns add` mounts namespaces, and netnsEtc where
// `ip netns exec` finds files to bind-mount over /etc (hosts, resolv.conf).
const (
	netnsDir = "/run/netns"
	netnsEtc = "/etc/netns"
)

// cmdRun runs argv and returns its combined output, failing with both.
func cmdRun(ctx context.Context, argv ...string) (string, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

func mustRun(t testing.TB, argv ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := cmdRun(ctx, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// netnsInode identifies a namespace, to find processes still inside it.
func netnsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return st.Ino, nil
}

// inNetns runs fn on an OS thread moved into the namespace mounted at
// path. A socket belongs to the namespace of the thread that creates it,
// so a dial or listen inside fn makes a socket of that namespace, which
// then works from any thread. The thread returns to the host's namespace
// afterwards, or is thrown away if it cannot.
func inNetns(path string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", path, err)
			return
		}
		err = fn()
		if unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		} // else: the goroutine ends locked, and the runtime discards the thread
		errc <- err
	}()
	return <-errc
}

// nsDialer dials from inside a namespace: what the test does when it acts
// as an application in a pod. Its connections are captured like the
// application's (the test runs as root, not as the proxy's UID).
type nsDialer struct{ path string }

func (d nsDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := inNetns(d.path, func() error {
		var err error
		c, err = (&net.Dialer{}).DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

func nsListen(path, addr string) (net.Listener, error) {
	var ln net.Listener
	err := inNetns(path, func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// network is the node namespace and the bookkeeping of every namespace,
// link and file the test made, for the cleanup and its check.
type network struct {
	prefix string // unique per run: every name starts with it
	node   string // the node namespace's name
	nextIP int
	nsInos map[string]uint64 // namespace name → inode
}

func newNetwork(t *testing.T, prefix string) *network {
	n := &network{prefix: prefix, node: prefix + "-node", nextIP: 10, nsInos: map[string]uint64{}}
	n.addNS(t, n.node)
	in := func(argv ...string) { mustRun(t, append([]string{"ip", "-n", n.node}, argv...)...) }
	in("link", "set", "lo", "up")
	in("link", "add", "br0", "type", "bridge")
	// A bridge whose address was never set takes the lowest of its ports'
	// addresses, so it changes as pods join, and pods holding the old one in
	// their neighbour cache lose the node (and the control plane behind it)
	// for seconds. An address set by hand is kept.
	in("link", "set", "br0", "address", "02:00:0a:f4:00:01")
	in("addr", "add", nodeIP+"/24", "dev", "br0")
	in("link", "set", "br0", "up")
	return n
}

// addNS creates a namespace, removed in t's cleanup.
func (n *network) addNS(t *testing.T, name string) {
	mustRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := cmdRun(ctx, "ip", "netns", "del", name); err != nil {
			t.Errorf("cleanup: %v", err)
		}
		if err := os.RemoveAll(filepath.Join(netnsEtc, name)); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ino, err := netnsInode(filepath.Join(netnsDir, name))
	if err != nil {
		t.Fatal(err)
	}
	n.nsInos[name] = ino
}

func (n *network) path(name string) string { return filepath.Join(netnsDir, name) }

// addPod creates a pod namespace joined to the bridge and returns its
// address. hosts are extra /etc/hosts lines the pod's processes see (the
// cluster DNS there is none of).
func (n *network) addPod(t *testing.T, short string, hosts string) (nsName, ip string) {
	idx := n.nextIP
	n.nextIP++
	if idx > 250 {
		t.Fatal("e2e: out of pod addresses")
	}
	nsName = fmt.Sprintf("%s-%s", n.prefix, short)
	ip = fmt.Sprintf("%s%d", podSubnetPrefix, idx)
	n.addNS(t, nsName)
	if err := os.MkdirAll(filepath.Join(netnsEtc, nsName), 0o755); err != nil {
		t.Fatal(err)
	}
	// Name lookups: the control plane's names, and a resolver that answers
	// nothing (no DNS query may leave the namespace).
	if err := os.WriteFile(filepath.Join(netnsEtc, nsName, "hosts"), []byte("127.0.0.1 localhost\n"+hosts), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(netnsEtc, nsName, "resolv.conf"), []byte("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	veth := fmt.Sprintf("v%s%d", n.prefix[len(n.prefix)-4:], idx) // ≤ 15 characters
	mustRun(t, "ip", "-n", n.node, "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", nsName)
	mustRun(t, "ip", "-n", n.node, "link", "set", veth, "master", "br0", "up")
	in := func(argv ...string) { mustRun(t, append([]string{"ip", "-n", nsName}, argv...)...) }
	in("link", "set", "lo", "up")
	in("addr", "add", ip+"/24", "dev", "eth0")
	in("link", "set", "eth0", "up")
	in("route", "add", serviceCIDR, "via", nodeIP, "dev", "eth0")
	return nsName, ip
}

// leftovers lists what of the network is still there: namespaces, their
// /etc/netns files, and processes inside any of them.
func (n *network) leftovers() []string {
	var left []string
	entries, _ := os.ReadDir(netnsDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.prefix) {
			left = append(left, "network namespace "+e.Name())
		}
	}
	entries, _ = os.ReadDir(netnsEtc)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), n.prefix) {
			left = append(left, filepath.Join(netnsEtc, e.Name()))
		}
	}
	inos := map[uint64]string{}
	for name, ino := range n.nsInos {
		inos[ino] = name
	}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if p.Name()[0] < '0' || p.Name()[0] > '9' {
			continue
		}
		ino, err := netnsInode(filepath.Join("/proc", p.Name(), "ns", "net"))
		if err != nil {
			continue
		}
		if name, ok := inos[ino]; ok {
			cmdline, _ := os.ReadFile(filepath.Join("/proc", p.Name(), "cmdline"))
			left = append(left, fmt.Sprintf("process %s (%s) in namespace %s", p.Name(), strings.ReplaceAll(string(cmdline), "\x00", " "), name))
		}
	}
	return left
}
