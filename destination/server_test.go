package destination

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/meshlet/meshlet/destination/api/destinationpb"
)

// serve runs a real gRPC server for b on a loopback port until t ends.
func serve(t testing.TB, b Backend, queue int) string {
	t.Helper()
	srv, err := NewServer(ServerConfig{Backend: b, QueueSize: queue})
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	pb.RegisterDestinationServer(gs, srv)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(l) }()
	t.Cleanup(func() { gs.Stop(); <-done })
	return l.Addr().String()
}

func dial(t testing.TB, addr string) pb.DestinationClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return pb.NewDestinationClient(conn)
}

// stream opens Get and returns a function reading the next update as a
// compact string (see describe), or "error <code>".
func stream(t testing.TB, c pb.DestinationClient, authority, ns string) func() string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := c.Get(ctx, &pb.GetRequest{Authority: authority, ContextNamespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	type result struct {
		u   *pb.Update
		err error
	}
	ch := make(chan result, 64)
	go func() {
		for {
			u, err := st.Recv()
			ch <- result{u, err}
			if err != nil {
				return
			}
		}
	}()
	return func() string {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				return "error " + status.Code(r.err).String()
			}
			return describe([]*pb.Update{r.u})[0]
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no update within 10s", authority)
			return ""
		}
	}
}

func writeFile(t testing.TB, path, content string) {
	t.Helper()
	// Write then rename, as an editor or meshctl dev would: the poller
	// never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func fileBackend(t testing.TB, content string, poll time.Duration) (*FileBackend, string, *prometheus.Registry) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "endpoints.yaml")
	writeFile(t, path, content)
	reg := prometheus.NewRegistry()
	fb, err := NewFileBackend(FileConfig{Path: path, PollInterval: poll, Registry: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = fb.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return fb, path, reg
}

func TestFileBackendResolves(t *testing.T) {
	fb, _, reg := fileBackend(t, sampleFile, time.Hour)
	c := dial(t, serve(t, fb, 0))
	tests := []struct{ authority, want string }{
		{"web:8080", "+127.0.0.1:9001@local,127.0.0.1:9002"},
		{"WEB:8080", "+127.0.0.1:9001@local,127.0.0.1:9002"},
		{"web", "+127.0.0.1:9001@local,127.0.0.1:9002"},
		{"web:9999", "none(unknown)"},
		{"127.0.0.1:7001", "+127.0.0.1:9001@local,127.0.0.1:9002"},
		{"127.0.0.1:9002", "+127.0.0.1:9002"},
		{"[::1]:5432", "+[::1]:5432"},
		{"db:5432", "+[::1]:5432"},
		{"db:1", "+[::1]:5432"},
		{"nope:80", "none(unknown)"},
		{"10.1.2.3:80", "none(unknown)"},
		{"bad_name:80", "error InvalidArgument"},
		{"web:0", "error InvalidArgument"},
		{"", "error InvalidArgument"},
	}
	for _, tt := range tests {
		t.Run(tt.authority, func(t *testing.T) {
			if got := stream(t, c, tt.authority, "")(); got != tt.want {
				t.Fatalf("first update = %q, want %q", got, tt.want)
			}
		})
	}
	if got := value(fb.m.malformed.WithLabelValues("malformed")); got != 3 {
		t.Errorf("malformed requests = %v, want 3", got)
	}
	if n := value(fb.m.updatesSent); n != float64(len(tests)-3) {
		t.Errorf("updates sent = %v, want %d", n, len(tests)-3)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 {
		t.Errorf("registry gathers %d families, %v", len(mfs), err)
	}
}

func TestFileBackendFollowsChanges(t *testing.T) {
	fb, path, _ := fileBackend(t, sampleFile, 20*time.Millisecond)
	c := dial(t, serve(t, fb, 0))
	next := stream(t, c, "web:8080", "")
	if got := next(); got != "+127.0.0.1:9001@local,127.0.0.1:9002" {
		t.Fatalf("initial = %q", got)
	}
	changed := strings.Replace(sampleFile, "127.0.0.1:9002", "127.0.0.1:9003", 1)
	writeFile(t, path, changed)
	if got := next(); got != "+127.0.0.1:9003" {
		t.Fatalf("after change: %q", got)
	}
	if got := next(); got != "-127.0.0.1:9002" {
		t.Fatalf("after change: %q", got)
	}

	// A broken save is reported and ignored: the stream keeps its state.
	writeFile(t, path, "services:\n  web:\n    endpoints:\n      - address: nope\n")
	deadline := time.Now().Add(5 * time.Second)
	for value(fb.m.fileReloads.WithLabelValues("error")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("invalid file not reported")
		}
		time.Sleep(10 * time.Millisecond)
	}
	writeFile(t, path, "services:\n  other:\n    endpoints: []\n")
	if got := next(); got != "none(unknown)" {
		t.Fatalf("after web was removed: %q", got)
	}
	writeFile(t, path, "services:\n  web:\n    endpoints: []\n")
	if got := next(); got != "none(exists)" {
		t.Fatalf("after web came back empty: %q", got)
	}
	if fb.broker.topicCount() != 1 {
		t.Fatalf("topics = %d, want 1", fb.broker.topicCount())
	}
}

// A client that stops reading fills its queue; its stream is ended with
// RESOURCE_EXHAUSTED and counted, even while a Send is blocked by flow
// control, and a new stream works.
func TestSlowStreamIsEnded(t *testing.T) {
	big := func(n int, port int) string {
		var b strings.Builder
		b.WriteString("services:\n  web:\n    endpoints:\n")
		for i := range n {
			b.WriteString("      - address: 10.0." + strconv.Itoa(i/250) + "." + strconv.Itoa(i%250+1) + ":" + strconv.Itoa(port) + "\n")
			b.WriteString("        labels: {padding: " + strings.Repeat("x", 300) + "}\n")
		}
		return b.String()
	}
	fb, path, _ := fileBackend(t, big(100, 1), time.Hour)
	addr := serve(t, fb, 4)
	// A fixed window (no BDP growth) makes Send block after 64 KiB unread.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	slow, err := pb.NewDestinationClient(conn).Get(ctx, &pb.GetRequest{Authority: "web:80"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := slow.Recv(); err != nil {
		t.Fatal(err)
	}
	// Every reload replaces all 100 endpoints (~35 kB per update).
	for i := 0; i < 50 && value(fb.m.dropped) == 0; i++ {
		writeFile(t, path, big(100, 2+i))
		fb.reload()
	}
	if value(fb.m.dropped) == 0 {
		t.Fatal("queue never overflowed")
	}
	deadline := time.Now().Add(10 * time.Second)
	for value(fb.m.overflows) == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if value(fb.m.overflows) != 1 {
		t.Fatalf("overflows = %v, want 1", value(fb.m.overflows))
	}
	var code codes.Code
	for {
		if _, err := slow.Recv(); err != nil {
			code = status.Code(err)
			break
		}
	}
	if code != codes.ResourceExhausted {
		t.Fatalf("slow stream ended with %v, want ResourceExhausted", code)
	}
	eventuallyZero := time.Now().Add(5 * time.Second)
	for value(fb.m.streamsOpen) != 0 && time.Now().Before(eventuallyZero) {
		time.Sleep(10 * time.Millisecond)
	}
	if value(fb.m.streamsOpen) != 0 {
		t.Fatal("ended stream still counted as open")
	}
	// A fresh stream still works and gets the current state.
	if got := stream(t, dial(t, addr), "web:80", "")(); !strings.HasPrefix(got, "+10.0.0.1:") {
		t.Fatalf("new stream: %q", got[:min(len(got), 40)])
	}
}
