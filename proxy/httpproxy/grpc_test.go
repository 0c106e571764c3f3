package httpproxy

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/meshlet/meshlet/proxy/endpoint"
)

// rawCodec carries []byte messages as they are, so the tests need no proto
// of their own: requests with content-type application/grpc+raw use it.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }
func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}
func (rawCodec) Name() string { return "raw" }

func init() { encoding.RegisterCodec(rawCodec{}) }

const echoMethod = "/meshlet.test.Echo/Echo"

var echoStream = grpc.StreamDesc{StreamName: "Echo", ServerStreams: true, ClientStreams: true}

// grpcApp is a gRPC server with the health service and a bidirectional
// echo stream that reports how each stream ended.
type grpcApp struct {
	addr   string
	health *health.Server
	ended  chan error // one value per finished echo stream
}

func newGRPCApp(t *testing.T) *grpcApp {
	g := &grpcApp{health: health.NewServer(), ended: make(chan error, 16)}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(8<<20), grpc.MaxSendMsgSize(8<<20))
	healthpb.RegisterHealthServer(srv, g.health)
	srv.RegisterService(&grpc.ServiceDesc{
		ServiceName: "meshlet.test.Echo",
		HandlerType: (*any)(nil),
		Streams: []grpc.StreamDesc{{StreamName: "Echo", ServerStreams: true, ClientStreams: true,
			Handler: func(_ any, ss grpc.ServerStream) error {
				for {
					var b []byte
					if err := ss.RecvMsg(&b); err != nil {
						if errors.Is(err, io.EOF) {
							err = nil
						}
						g.ended <- err
						return err
					}
					if err := ss.SendMsg(&b); err != nil {
						g.ended <- err
						return err
					}
				}
			}}},
	}, struct{}{})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(srv.Stop)
	g.addr = l.Addr().String()
	return g
}

func grpcClient(t *testing.T, proxyAddr string) *grpc.ClientConn {
	cc, err := grpc.NewClient("passthrough:///"+webHost,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", proxyAddr)
		}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(8<<20), grpc.MaxCallSendMsgSize(8<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func TestGRPC(t *testing.T) {
	for _, tp := range topologies {
		if tp.proto != HTTP2 {
			continue
		}
		t.Run(tp.name, func(t *testing.T) {
			g := newGRPCApp(t)
			e := newEnv(t, tp, envOpts{target: g.addr})
			cc := grpcClient(t, e.outAddrs[HTTP2])
			hc := healthpb.NewHealthClient(cc)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()

			t.Run("unary", func(t *testing.T) {
				res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
				if err != nil || res.Status != healthpb.HealthCheckResponse_SERVING {
					t.Fatalf("Check: %v, %v", res, err)
				}
				_, err = hc.Check(ctx, &healthpb.HealthCheckRequest{Service: "missing"})
				if status.Code(err) != codes.NotFound {
					t.Errorf("Check(missing): %v, want NotFound from the app", err)
				}
			})
			t.Run("server streaming", func(t *testing.T) {
				g.health.SetServingStatus("svc", healthpb.HealthCheckResponse_SERVING)
				w, err := hc.Watch(ctx, &healthpb.HealthCheckRequest{Service: "svc"})
				if err != nil {
					t.Fatal(err)
				}
				if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_SERVING {
					t.Fatalf("first: %v %v", m, err)
				}
				g.health.SetServingStatus("svc", healthpb.HealthCheckResponse_NOT_SERVING)
				if m, err := w.Recv(); err != nil || m.Status != healthpb.HealthCheckResponse_NOT_SERVING {
					t.Fatalf("second: %v %v", m, err)
				}
			})
			t.Run("bidi streaming with large messages", func(t *testing.T) {
				s, err := cc.NewStream(ctx, &echoStream, echoMethod, grpc.CallContentSubtype("raw"))
				if err != nil {
					t.Fatal(err)
				}
				for _, n := range []int{1, 1000, 100 << 10, 4 << 20, 3} {
					msg := bytes.Repeat([]byte{byte(n)}, n)
					if err := s.SendMsg(&msg); err != nil {
						t.Fatal(err)
					}
					var got []byte
					if err := s.RecvMsg(&got); err != nil || !bytes.Equal(got, msg) {
						t.Fatalf("echo of %d bytes: %d bytes, %v", n, len(got), err)
					}
				}
				s.CloseSend()
				var b []byte
				if err := s.RecvMsg(&b); err != io.EOF {
					t.Fatalf("end: %v, want EOF (status OK)", err)
				}
				if err := <-g.ended; err != nil {
					t.Errorf("server stream ended with %v", err)
				}
			})
			t.Run("cancel reaches the server", func(t *testing.T) {
				sctx, scancel := context.WithCancel(ctx)
				s, err := cc.NewStream(sctx, &echoStream, echoMethod, grpc.CallContentSubtype("raw"))
				if err != nil {
					t.Fatal(err)
				}
				msg := []byte("x")
				s.SendMsg(&msg)
				var got []byte
				if err := s.RecvMsg(&got); err != nil {
					t.Fatal(err)
				}
				scancel()
				select {
				case err := <-g.ended:
					if status.Code(err) != codes.Canceled {
						t.Errorf("server stream ended with %v, want Canceled", err)
					}
				case <-time.After(5 * time.Second):
					t.Fatal("server stream not cancelled")
				}
			})
			t.Run("proxy failure is a gRPC status", func(t *testing.T) {
				e.static.Set(webAuth, endpoint.Set{Exists: true})
				defer e.static.Set(webAuth, endpoint.Set{}) // the env is done after this
				_, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
				if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), "no-endpoints") {
					t.Errorf("Check with no endpoints: %v, want Unavailable naming no-endpoints", err)
				}
				if v := metricValue(t, e.out.reg, "meshlet_response_total", map[string]string{"grpc_status": "14", "classification": "failure"}); v != 1 {
					t.Errorf("failure responses with grpc_status 14 = %v, want 1", v)
				}
			})
			if v := metricValue(t, e.out.reg, "meshlet_response_total", map[string]string{"grpc_status": "0", "classification": "success", "dst_service": "web"}); v != 2 {
				t.Errorf("successful gRPC responses counted: %v, want 2 (unary OK, bidi OK)", v)
			}
		})
	}
}
