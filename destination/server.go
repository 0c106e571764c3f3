package destination

import (
	"errors"
	"log/slog"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
)

// DefaultQueueSize is the per-stream update queue length used when
// ServerConfig.QueueSize is 0.
const DefaultQueueSize = 128

// Backend resolves authorities to endpoint streams: the Kubernetes backend
// (NewKubeBackend) or the file backend (NewFileBackend).
type Backend interface {
	// subscribe starts s following a; the error wraps ErrInvalidAuthority
	// for requests the backend cannot interpret.
	subscribe(a Authority, contextNamespace string, s *subscriber) (cancel func(), err error)
	metrics() *metrics
}

// ServerConfig configures a Server.
type ServerConfig struct {
	// Backend answers the requests. Required.
	Backend Backend
	// QueueSize bounds each stream's queue of unsent updates; a stream whose
	// queue fills is ended with RESOURCE_EXHAUSTED. 0 means DefaultQueueSize.
	QueueSize int
	// Logger receives stream errors; nil means slog.Default().
	Logger *slog.Logger
}

// Server implements the Destination gRPC service over a Backend.
type Server struct {
	pb.UnimplementedDestinationServer
	cfg ServerConfig
	m   *metrics
}

// NewServer returns a Server; register it with
// destinationpb.RegisterDestinationServer.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Backend == nil {
		return nil, errors.New("destination: ServerConfig.Backend is required")
	}
	if cfg.QueueSize <= 0 {
		cfg.QueueSize = DefaultQueueSize
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Server{cfg: cfg, m: cfg.Backend.metrics()}, nil
}

// Get implements destinationpb.DestinationServer.
func (s *Server) Get(req *pb.GetRequest, stream pb.Destination_GetServer) error {
	a, err := ParseAuthority(req.GetAuthority())
	if err == nil && req.GetContextNamespace() != "" {
		if lerr := checkLabel(req.GetContextNamespace()); lerr != nil {
			err = errors.Join(ErrInvalidAuthority, errors.New("destination: context_namespace "+lerr.Error()))
		}
	}
	sub := newSubscriber(s.cfg.QueueSize)
	var cancel func()
	if err == nil {
		cancel, err = s.cfg.Backend.subscribe(a, req.GetContextNamespace(), sub)
	}
	if err != nil {
		return s.toStatus(err)
	}
	defer cancel()
	s.m.streamsOpen.Inc()
	defer s.m.streamsOpen.Dec()

	// A separate goroutine sends, so that this one can end the stream when
	// its queue overflows even while a Send is blocked by HTTP/2 flow
	// control (the client stopped reading). Returning closes the stream,
	// which unblocks that Send; the sender then ends on its own.
	ctx := stream.Context()
	stop := make(chan struct{})
	defer close(stop)
	sendErr := make(chan error, 1)
	go s.send(stream, sub, stop, sendErr)
	select {
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case err := <-sendErr:
		return err
	case <-sub.overflowed:
		s.m.overflows.Inc()
		s.cfg.Logger.Warn("destination: stream fell behind, ending it", "authority", req.GetAuthority())
		return status.Errorf(codes.ResourceExhausted, "destination: stream for %q fell behind (more than %d updates queued); reconnect to resync", req.GetAuthority(), s.cfg.QueueSize)
	}
}

// send writes queued updates to the stream until stop is closed or a Send
// fails.
func (s *Server) send(stream pb.Destination_GetServer, sub *subscriber, stop <-chan struct{}, errc chan<- error) {
	for {
		select {
		case <-stop:
			return
		case q := <-sub.ch:
			select {
			case <-stop:
				// The handler returned meanwhile: the stream is finished.
				return
			default:
			}
			if err := stream.Send(q.upd); err != nil {
				errc <- err
				return
			}
			s.m.updatesSent.WithLabelValues(updateType(q.upd)).Inc()
			if !q.at.IsZero() {
				s.m.lag.Observe(time.Since(q.at).Seconds())
			}
		}
	}
}

// toStatus is the one place errors become gRPC status codes.
func (s *Server) toStatus(err error) error {
	if errors.Is(err, ErrInvalidAuthority) {
		s.m.malformed.WithLabelValues(reasonOf(err)).Inc()
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if errors.Is(err, errNotReady) {
		return status.Error(codes.Unavailable, err.Error())
	}
	return status.Error(codes.Internal, err.Error())
}

// errNoPort is wrapped (with ErrInvalidAuthority) by a backend that needs a
// port and got none; it gives the malformed-request metric its reason.
var errNoPort = errors.New("authority has no port")

func reasonOf(err error) string {
	if errors.Is(err, errNoPort) {
		return "no_port"
	}
	return "malformed"
}

func updateType(u *pb.Update) string {
	switch u.GetUpdate().(type) {
	case *pb.Update_Add:
		return "add"
	case *pb.Update_Remove:
		return "remove"
	}
	return "no_endpoints"
}
