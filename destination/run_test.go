package destination_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/meshlet/meshlet/destination"
	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		cfg  destination.Config
		want string
	}{
		{destination.Config{}, ""},
		{destination.Config{Source: "kubernetes"}, ""},
		{destination.Config{Source: "file", File: "x.yaml"}, ""},
		{destination.Config{Source: "file"}, "needs a file"},
		{destination.Config{File: "x.yaml"}, "--source=file"},
		{destination.Config{Source: "consul"}, `unknown source "consul"`},
		{destination.Config{QueueSize: -1}, "queue size"},
		{destination.Config{TLSCertFile: "c.pem"}, "both a certificate file and a key file"},
	}
	for _, tt := range tests {
		err := tt.cfg.Validate()
		if tt.want == "" && err != nil || tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%+v: Validate() = %v, want %q", tt.cfg, err, tt.want)
		}
	}
}

// Run with the file backend, as `meshctl dev` starts it: admin endpoints,
// a stream, and a clear error for an invalid file at start.
func TestRunFileSource(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "endpoints.yaml")
	if err := os.WriteFile(path, []byte("services:\n  web:\n    endpoints:\n      - address: 127.0.0.1:9001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addrs := make(chan [2]net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- destination.Run(ctx, destination.Config{
			Source: destination.SourceFile, File: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
			Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
			OnListen: func(g, a net.Addr) { addrs <- [2]net.Addr{g, a} },
		})
	}()
	var a [2]net.Addr
	select {
	case a = <-addrs:
	case err := <-done:
		t.Fatalf("Run: %v", err)
	}
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + a[1].String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	for _, p := range []string{"/ready", "/live"} {
		if code, _ := get(p); code != http.StatusOK {
			t.Errorf("%s: %d", p, code)
		}
	}

	conn, err := grpc.NewClient(a[0].String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, scancel := context.WithCancel(ctx)
	st, err := pb.NewDestinationClient(conn).Get(sctx, &pb.GetRequest{Authority: "web:80"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := st.Recv()
	if err != nil || len(u.GetAdd().GetEndpoints()) != 1 {
		t.Fatalf("first update %v, %v", u, err)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{"meshlet_destination_streams_open 1", "meshlet_destination_ready 1", "go_goroutines", "process_resident_memory_bytes"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	scancel()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}

	// An invalid file at start is an error naming the line; nothing runs.
	if err := os.WriteFile(path, []byte("services:\n  web:\n    endpoints:\n      - address: nope\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = destination.Run(context.Background(), destination.Config{Source: destination.SourceFile, File: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"})
	if err == nil || !strings.Contains(err.Error(), "line 4") || !strings.Contains(err.Error(), path) {
		t.Fatalf("Run with an invalid file: %v", err)
	}
}
