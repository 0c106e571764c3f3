package kubetest

import (
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// live holds every started cluster until it is stopped, so that an
// interrupted test binary can stop them. A signal is process-wide, so this
// state is too.
var live struct {
	sync.Mutex
	clusters map[*Cluster]struct{}
	watching bool
}

func track(c *Cluster) {
	live.Lock()
	defer live.Unlock()
	if live.clusters == nil {
		live.clusters = make(map[*Cluster]struct{})
	}
	live.clusters[c] = struct{}{}
}

func untrack(c *Cluster) {
	live.Lock()
	defer live.Unlock()
	delete(live.clusters, c)
}

// watchSignals makes SIGINT, SIGTERM and SIGHUP of the test binary stop every
// live cluster (children killed, state dirs removed) and then end the binary
// by the same signal, as it would have ended without the harness. The
// watcher goroutine lives as long as the process: it owns the process-wide
// signal, and there is exactly one.
func watchSignals() {
	live.Lock()
	defer live.Unlock()
	if live.watching {
		return
	}
	live.watching = true
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	go func() {
		sig := <-ch
		live.Lock()
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
	}()
}
