package endpoint

import "sync"

// Static is a Resolver over a fixed, replaceable table. It serves tests and
// setups without a control plane. The zero value knows no authority.
type Static struct {
	mu       sync.Mutex
	sets     map[string]Set
	watchers map[string]map[*staticWatch]struct{}
}

type staticWatch struct {
	mu      sync.Mutex // serialises update calls and stop
	stopped bool
	update  func(Set)
}

// Set replaces the endpoints of authority and notifies its watchers.
func (s *Static) Set(authority string, set Set) {
	s.mu.Lock()
	if s.sets == nil {
		s.sets = make(map[string]Set)
	}
	s.sets[authority] = set
	ws := make([]*staticWatch, 0, len(s.watchers[authority]))
	for w := range s.watchers[authority] {
		ws = append(ws, w)
	}
	s.mu.Unlock()
	for _, w := range ws {
		w.deliver(set)
	}
}

// Watch implements Resolver. An authority never Set is reported as not
// existing.
func (s *Static) Watch(authority string, update func(Set)) func() {
	w := &staticWatch{update: update}
	s.mu.Lock()
	if s.watchers == nil {
		s.watchers = make(map[string]map[*staticWatch]struct{})
	}
	if s.watchers[authority] == nil {
		s.watchers[authority] = make(map[*staticWatch]struct{})
	}
	s.watchers[authority][w] = struct{}{}
	set := s.sets[authority]
	s.mu.Unlock()
	w.deliver(set)
	return func() {
		s.mu.Lock()
		delete(s.watchers[authority], w)
		s.mu.Unlock()
		w.mu.Lock()
		w.stopped = true
		w.mu.Unlock()
	}
}

func (w *staticWatch) deliver(set Set) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.stopped {
		w.update(set)
	}
}
