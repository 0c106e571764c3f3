package destination

import (
	"sync"
	"time"
)

// depKey names a thing a topic's snapshot was computed from ("svc/ns/name",
// "pod/ns/name", "ip/10.0.0.1", "file"): an event on it recomputes the topic.
type depKey string

// computeFunc builds a topic's snapshot and lists what it depends on.
type computeFunc[K comparable] func(K) (snapshot, []depKey)

// broker owns the topics that at least one stream follows. Topics are
// created on first subscription and dropped with their last subscriber, so
// the work per event is proportional to what proxies actually ask for.
//
// All topic state changes under one mutex: snapshots are computed and
// published in event order, and a new subscriber gets the full state and
// then exactly the diffs that follow it.
type broker[K comparable] struct {
	compute computeFunc[K]
	m       *metrics

	mu     sync.Mutex
	topics map[K]*topic
	byDep  map[depKey]map[K]struct{}
}

type topic struct {
	snap snapshot
	deps []depKey
	subs map[*subscriber]struct{}
}

func newBroker[K comparable](compute computeFunc[K], m *metrics) *broker[K] {
	return &broker[K]{
		compute: compute,
		m:       m,
		topics:  make(map[K]*topic),
		byDep:   make(map[depKey]map[K]struct{}),
	}
}

// subscribe sends s the topic's full state and then its changes until the
// returned cancel is called.
func (b *broker[K]) subscribe(k K, s *subscriber) (cancel func()) {
	b.mu.Lock()
	t, ok := b.topics[k]
	if !ok {
		snap, deps := b.compute(k)
		t = &topic{snap: snap, subs: make(map[*subscriber]struct{})}
		b.topics[k] = t
		b.setDeps(k, t, deps)
		b.m.topics.Inc()
	}
	t.subs[s] = struct{}{}
	b.push(s, queued{upd: fullState(t.snap)})
	b.mu.Unlock()

	var once sync.Once
	return func() {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			delete(t.subs, s)
			if len(t.subs) == 0 && b.topics[k] == t {
				b.setDeps(k, t, nil)
				delete(b.topics, k)
				b.m.topics.Dec()
			}
		})
	}
}

// invalidate recomputes every topic depending on one of deps and publishes
// the differences; at is when the earliest of the causing events happened.
func (b *broker[K]) invalidate(deps []depKey, at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	dirty := make(map[K]struct{})
	for _, d := range deps {
		for k := range b.byDep[d] {
			dirty[k] = struct{}{}
		}
	}
	for k := range dirty {
		b.recompute(k, at)
	}
}

// invalidateAll recomputes every topic (the file backend after a reload).
func (b *broker[K]) invalidateAll(at time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k := range b.topics {
		b.recompute(k, at)
	}
}

func (b *broker[K]) recompute(k K, at time.Time) {
	t := b.topics[k]
	snap, deps := b.compute(k)
	b.setDeps(k, t, deps)
	ups := diff(t.snap, snap)
	t.snap = snap
	for _, u := range ups {
		for s := range t.subs {
			b.push(s, queued{upd: u, at: at})
		}
	}
}

func (b *broker[K]) push(s *subscriber, q queued) {
	if !s.push(q) {
		b.m.dropped.Inc()
	}
}

// setDeps replaces t's dependencies in the reverse index.
func (b *broker[K]) setDeps(k K, t *topic, deps []depKey) {
	for _, d := range t.deps {
		if set := b.byDep[d]; set != nil {
			delete(set, k)
			if len(set) == 0 {
				delete(b.byDep, d)
			}
		}
	}
	t.deps = deps
	for _, d := range deps {
		set := b.byDep[d]
		if set == nil {
			set = make(map[K]struct{})
			b.byDep[d] = set
		}
		set[k] = struct{}{}
	}
}

// topicCount is for tests: how many topics are followed.
func (b *broker[K]) topicCount() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.topics)
}
