package kubetest

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// live holds every started cluster until it is stopped, so that an
// interrupted test binary can stop them. A signal is process-wide, so this
// state is too. The signal watcher runs only while a cluster is live: after
// the last Stop no goroutine of the harness is left for a leak check to find,
// and the process' signal handling is as it was.
var live struct {
	sync.Mutex
	clusters map[*Cluster]struct{}
	stop     chan struct{} // closing it ends the watcher; nil when none runs
	done     chan struct{} // closed when the watcher has ended
}

func track(c *Cluster) {
	live.Lock()
	defer live.Unlock()
	if live.clusters == nil {
		live.clusters = make(map[*Cluster]struct{})
	}
	live.clusters[c] = struct{}{}
	if live.stop == nil {
		live.stop, live.done = make(chan struct{}), make(chan struct{})
		go watchSignals(live.stop, live.done)
	}
}

func untrack(c *Cluster) {
	live.Lock()
	delete(live.clusters, c)
	if len(live.clusters) > 0 || live.stop == nil {
		live.Unlock()
		return
	}
	stop, done := live.stop, live.done
	live.stop, live.done = nil, nil
	live.Unlock()
	close(stop)
	<-done
}

// watchSignals makes SIGINT, SIGTERM and SIGHUP of the test binary stop every
// live cluster (children killed, state dirs removed) and then end the binary
// by the same signal, as it would have ended without the harness.
func watchSignals(stop <-chan struct{}, done chan<- struct{}) {
	defer close(done)
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(ch)
	var sig os.Signal
	select {
	case <-stop:
		return
	case sig = <-ch:
	}
	// Detach first: the Stops below untrack their clusters, and the last
	// one must not wait for this goroutine to end.
	live.Lock()
	if live.done == done {
		live.stop, live.done = nil, nil
	}
	clusters := make([]*Cluster, 0, len(live.clusters))
	for c := range live.clusters {
		clusters = append(clusters, c)
	}
	live.Unlock()
	for _, c := range clusters {
		c.Stop()
	}
	signal.Reset(sig)
	syscall.Kill(os.Getpid(), sig.(syscall.Signal))
}
