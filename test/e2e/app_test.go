//go:build linux

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// The application of every pod is this test binary run again with roleEnv
// set: servers on the ports below, each answering with the pod's name.
const (
	roleEnv  = "MESHLET_E2E_ROLE"
	podEnv   = "MESHLET_E2E_POD"
	delayEnv = "MESHLET_E2E_DELAY" // added to every HTTP and gRPC answer

	httpPort   = 8080 // HTTP/1.1 and h2c
	grpcPort   = 9090 // gRPC health service, x-pod response header
	bannerPort = 5432 // opaque, server speaks first: "hello <pod>\n", then echo
	echoPort   = 7000 // opaque, client speaks first (binary): echo
)

func runApp() int {
	pod := os.Getenv(podEnv)
	var delay time.Duration
	if v := os.Getenv(delayEnv); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e app:", err)
			return 2
		}
		delay = d
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	listen := func(port int) net.Listener {
		ln, err := net.Listen("tcp", fmt.Sprintf("0.0.0.0:%d", port))
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e app:", err)
			os.Exit(1)
		}
		return ln
	}

	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			time.Sleep(delay)
		}
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Pod", pod)
		fmt.Fprintf(w, "pod=%s host=%s proto=%s\n", pod, r.Host, r.Proto)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, Protocols: new(http.Protocols)}
	hs.Protocols.SetHTTP1(true)
	hs.Protocols.SetUnencryptedHTTP2(true)
	go func() { _ = hs.Serve(listen(httpPort)) }()

	gs := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if delay > 0 {
			time.Sleep(delay)
		}
		_ = grpc.SetHeader(ctx, metadata.Pairs("x-pod", pod))
		return h(ctx, req)
	}))
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go func() { _ = gs.Serve(listen(grpcPort)) }()

	go serveTCP(listen(bannerPort), func(c net.Conn) {
		fmt.Fprintf(c, "hello %s\n", pod)
		_, _ = io.Copy(c, c)
	})
	go serveTCP(listen(echoPort), func(c net.Conn) {
		_, _ = io.Copy(c, bufio.NewReader(c))
	})

	<-ctx.Done()
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(shut)
	gs.Stop()
	return 0
}

func serveTCP(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(time.Minute))
			handle(c)
		}()
	}
}
