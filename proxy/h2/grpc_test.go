package h2_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meshlet/meshlet/proxy/h2"
)

// gRPC through both halves: grpc-go client → h2.Server → forwarder →
// h2.ClientConn → grpc-go server (h2c).

// forwarder relays each request on cc, streaming both bodies and copying
// trailers, the way the proxy does.
func forwarder(cc *h2.ClientConn, backend string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		out := &http.Request{
			Method:        r.Method,
			URL:           &url.URL{Scheme: "http", Host: backend, Path: r.URL.Path, RawQuery: r.URL.RawQuery},
			Header:        r.Header.Clone(),
			Host:          r.Host,
			Body:          r.Body,
			ContentLength: r.ContentLength,
			Trailer:       r.Trailer,
		}
		if r.ContentLength == 0 {
			out.Body = nil
		}
		out = out.WithContext(r.Context())
		resp, err := cc.RoundTrip(out)
		if err != nil {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		for k, vv := range resp.Header {
			w.Header()[k] = vv
		}
		w.WriteHeader(resp.StatusCode)
		buf := make([]byte, 32<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				w.(http.Flusher).Flush()
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				panic(http.ErrAbortHandler) // reset the client's stream too
			}
		}
		for k, vv := range resp.Trailer {
			for _, v := range vv {
				w.Header().Add(http.TrailerPrefix+k, v)
			}
		}
	})
}

// watchHealth is the standard health server, noting when a Watch ends.
type watchHealth struct {
	*health.Server
	watchEnded chan error
}

func (s *watchHealth) Watch(in *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	err := s.Server.Watch(in, stream)
	s.watchEnded <- stream.Context().Err()
	return err
}

type grpcSetup struct {
	hs      *health.Server
	ended   chan error
	client  healthpb.HealthClient
	proxyTS *testServer
}

func startGRPC(t *testing.T) *grpcSetup {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	g := &grpcSetup{hs: health.NewServer(), ended: make(chan error, 16)}
	healthpb.RegisterHealthServer(gs, &watchHealth{Server: g.hs, watchEnded: g.ended})
	served := make(chan struct{})
	go func() { defer close(served); gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); <-served })

	cc := dialClient(t, ln.Addr().String(), h2.ClientConfig{})
	g.proxyTS = startServer(t, forwarder(cc, ln.Addr().String()), nil)

	conn, err := grpc.NewClient("passthrough:///"+g.proxyTS.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	g.client = healthpb.NewHealthClient(conn)
	return g
}

func TestGRPCUnary(t *testing.T) {
	g := startGRPC(t)
	g.hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	resp, err := g.client.Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("Check(\"\"): %v %v, want SERVING", resp, err)
	}
	resp, err = g.client.Check(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Errorf("Check(svc): %v %v, want NOT_SERVING", resp, err)
	}
	// A non-OK status travels in trailers (or a trailers-only response).
	_, err = g.client.Check(ctx, &healthpb.HealthCheckRequest{Service: "unknown"})
	if status.Code(err) != codes.NotFound {
		t.Errorf("Check(unknown): %v, want NotFound", err)
	}
}

func TestGRPCConcurrentUnary(t *testing.T) {
	g := startGRPC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 10 {
				svc := ""
				want := codes.OK
				if (i+j)%3 == 0 {
					svc, want = "nope", codes.NotFound
				}
				_, err := g.client.Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
				if status.Code(err) != want {
					t.Errorf("call %d/%d: %v, want %v", i, j, err, want)
					return
				}
			}
		}()
	}
	wg.Wait()
	if got := g.proxyTS.accepted.Load(); got != 1 {
		t.Errorf("grpc client opened %d connections to the proxy, want 1", got)
	}
}

// TestGRPCWatch: a server stream's messages arrive as they are sent (the
// forwarder flushes), and a client cancel reaches the backend.
func TestGRPCWatch(t *testing.T) {
	g := startGRPC(t)
	g.hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := g.client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
	if err != nil {
		t.Fatal(err)
	}
	recv := func() (*healthpb.HealthCheckResponse, error) {
		type res struct {
			m   *healthpb.HealthCheckResponse
			err error
		}
		ch := make(chan res, 1)
		go func() { m, err := stream.Recv(); ch <- res{m, err} }()
		r := within(t, ch, 10*time.Second, "a Watch message")
		return r.m, r.err
	}
	if m, err := recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first: %v %v", m, err)
	}
	g.hs.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
	if m, err := recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
		t.Fatalf("second: %v %v", m, err)
	}
	g.hs.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
	if m, err := recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("third: %v %v", m, err)
	}
	cancel()
	if _, err := recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v, want Canceled", err)
	}
	// The reset crossed both hops: the backend's Watch ended.
	if err := within(t, g.ended, 10*time.Second, "the backend Watch to end"); err == nil {
		t.Errorf("backend Watch ended without its context ending")
	}
}

// TestGRPCWatchUnknownThenUnary: a Watch of an unknown service streams
// SERVICE_UNKNOWN; once it is canceled, unary calls still work.
func TestGRPCWatchUnknownThenUnary(t *testing.T) {
	g := startGRPC(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := g.client.Watch(ctx, &healthpb.HealthCheckRequest{Service: "absent"})
	if err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVICE_UNKNOWN {
		t.Fatalf("Watch(absent): %v %v, want SERVICE_UNKNOWN", m, err)
	}
	cancel()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := g.client.Check(ctx2, &healthpb.HealthCheckRequest{}); err != nil {
		t.Errorf("Check after a canceled Watch: %v", err)
	}
}
