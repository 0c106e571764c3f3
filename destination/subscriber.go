package destination

import (
	"sync"
	"time"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
)

// queued is one update waiting to be sent on a stream, with the time of the
// Kubernetes (or file) event that caused it, for the lag metric. at is zero
// for a stream's first message.
type queued struct {
	upd *pb.Update
	at  time.Time
}

// subscriber is one stream's bounded queue. Publishers never block: when the
// queue is full the subscriber is marked overflowed and its stream ends, so
// a slow client costs at most its queue and never delays other streams or
// the informers.
type subscriber struct {
	ch         chan queued
	overflowed chan struct{}
	once       sync.Once
}

func newSubscriber(size int) *subscriber {
	return &subscriber{ch: make(chan queued, size), overflowed: make(chan struct{})}
}

// push enqueues u without blocking; it reports false when the queue is full
// (and from then on drops everything).
func (s *subscriber) push(u queued) bool {
	select {
	case <-s.overflowed:
		return false
	default:
	}
	select {
	case s.ch <- u:
		return true
	default:
		s.once.Do(func() { close(s.overflowed) })
		return false
	}
}
