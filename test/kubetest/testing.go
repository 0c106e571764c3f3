package kubetest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
)

// Start starts a cluster for one test (or benchmark) and stops it in
// tb.Cleanup. It skips the test when the binaries are missing and fails it
// when the cluster does not start. Prefer Shared: one cluster per package
// is much cheaper than one per test.
func Start(tb testing.TB) *Cluster {
	tb.Helper()
	return StartWith(tb, Options{})
}

// StartWith is Start with options (opts.Logf defaults to tb.Logf).
func StartWith(tb testing.TB, opts Options) *Cluster {
	tb.Helper()
	if opts.Logf == nil {
		opts.Logf = tb.Logf
	}
	c, err := New(context.Background(), opts)
	if errors.Is(err, ErrNoBinaries) {
		tb.Skip(err.Error())
	}
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Stop(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// shared is the package's cluster, started by the first Shared call and
// stopped by Main once the tests are done.
var shared struct {
	sync.Mutex
	inMain  bool
	opts    Options
	started bool
	cluster *Cluster
	err     error
}

// Main runs a test package whose tests call Shared, then stops the shared
// cluster and exits with the tests' status. Call it from TestMain:
//
//	func TestMain(m *testing.M) { kubetest.Main(m) }
//
// The cluster starts at the first Shared call, so `go test -run` of tests
// that do not need it costs nothing.
func Main(m *testing.M) { MainWith(m, Options{}) }

// MainWith is Main with options for the shared cluster, e.g.
// Options{ControllerManager: true}.
func MainWith(m *testing.M, opts Options) {
	shared.Lock()
	shared.inMain = true
	shared.opts = opts
	shared.Unlock()
	code := m.Run()
	shared.Lock()
	if shared.cluster != nil {
		if err := shared.cluster.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			if code == 0 {
				code = 1
			}
		}
	}
	shared.Unlock()
	os.Exit(code)
}

// Shared returns the package's cluster, starting it on first use. It skips
// t when the binaries are missing, and fails it when the cluster did not
// start (the start is tried once per package). The package's TestMain must
// call Main, which stops the cluster at the end.
func Shared(tb testing.TB) *Cluster {
	tb.Helper()
	shared.Lock()
	defer shared.Unlock()
	if !shared.inMain {
		tb.Fatal("kubetest: Shared needs the package's TestMain to call kubetest.Main(m)")
	}
	if !shared.started {
		shared.started = true
		// Not tb.Logf: the cluster outlives this test, and logging through
		// a finished test panics. The go command shows a passing package's
		// stderr only with -v.
		opts := shared.opts
		if opts.Logf == nil {
			opts.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, format+"\n", args...) }
		}
		shared.cluster, shared.err = New(context.Background(), opts)
	}
	if errors.Is(shared.err, ErrNoBinaries) {
		tb.Skip(shared.err.Error())
	}
	if shared.err != nil {
		tb.Fatalf("kubetest: the package's cluster did not start: %v", shared.err)
	}
	return shared.cluster
}
