//go:build linux

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// load sends HTTP GETs from inside a pod with a few workers until stopped,
// at most maxRequests in all, and records who answered when.
type load struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex
	events []loadEvent
	errs   []string
	failed int
}

type loadEvent struct {
	at  time.Time
	pod string
	dur time.Duration
}

const maxLoadRequests = 50000

// startLoad runs until stop, maxRequests or limit, whichever comes first.
func startLoad(t *testing.T, p *pod, url string, workers, maxRequests int, limit time.Duration) *load {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	l := &load{cancel: cancel}
	tr := &http.Transport{DialContext: p.dial.DialContext, MaxIdleConnsPerHost: workers}
	client := &http.Client{Timeout: 10 * time.Second, Transport: tr}
	var sent sync.Mutex
	n := 0
	take := func() bool {
		sent.Lock()
		defer sent.Unlock()
		if n >= maxRequests {
			return false
		}
		n++
		return true
	}
	for range workers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil && take() {
				begin := time.Now()
				req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
				resp, err := client.Do(req)
				if err != nil {
					l.fail(err.Error())
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || resp.StatusCode != http.StatusOK {
					l.fail(fmt.Sprintf("status %d, body error %v", resp.StatusCode, err))
					continue
				}
				l.mu.Lock()
				l.events = append(l.events, loadEvent{at: time.Now(), pod: resp.Header.Get("X-Pod"), dur: time.Since(begin)})
				l.mu.Unlock()
			}
		}()
	}
	t.Cleanup(func() { l.stop(); tr.CloseIdleConnections() })
	return l
}

func (l *load) fail(msg string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.failed++
	if len(l.errs) < 10 {
		l.errs = append(l.errs, time.Now().Format("15:04:05.000")+" "+msg)
	}
}

// stop ends the load and waits for the workers.
func (l *load) stop() {
	l.cancel()
	l.wg.Wait()
}

// snapshot returns the answers so far and the failures.
func (l *load) snapshot() (events []loadEvent, failed int, errs []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]loadEvent(nil), l.events...), l.failed, append([]string(nil), l.errs...)
}

// count is the number of answers by pod since from.
func count(events []loadEvent, from time.Time) map[string]int {
	out := map[string]int{}
	for _, e := range events {
		if !e.at.Before(from) {
			out[e.pod]++
		}
	}
	return out
}

// waitFor polls the load until cond holds on its events (returning how long
// it took from since) or timeout passes.
func (l *load) waitFor(since time.Time, timeout time.Duration, cond func([]loadEvent) bool) (time.Duration, bool) {
	for time.Since(since) < timeout {
		events, _, _ := l.snapshot()
		if cond(events) {
			return time.Since(since), true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return timeout, false
}

// requireNoFailures fails t when the load saw any failed request.
func (l *load) requireNoFailures(t *testing.T, what string) {
	t.Helper()
	events, failed, errs := l.snapshot()
	if failed > 0 {
		t.Errorf("%s: %d of %d requests failed; first: %v", what, failed, failed+len(events), errs)
	}
	if len(events) == 0 {
		t.Errorf("%s: no request succeeded", what)
	}
}
