//go:build linux

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// grpcChecks makes n health checks from inside p over one gRPC connection
// to addr (with :authority set when authority is not empty) and counts
// the answering pods.
func grpcChecks(t *testing.T, p *pod, addr, authority string, n int) map[string]int {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return p.dial.DialContext(ctx, "tcp", a) }),
	}
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	hc := healthpb.NewHealthClient(cc)
	seen := map[string]int{}
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		var md metadata.MD
		resp, err := hc.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Header(&md))
		cancel()
		if err != nil {
			t.Fatalf("e2e: gRPC check %d to %s from %s: %v", i, addr, p.name, err)
		}
		if resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("e2e: gRPC check %d: status %v", i, resp.GetStatus())
		}
		if v := md.Get("x-pod"); len(v) == 1 {
			seen[v[0]]++
		} else {
			t.Fatalf("e2e: gRPC check %d: x-pod header %v", i, v)
		}
	}
	return seen
}

// bannerExchange connects from inside p to a server-speaks-first port,
// reads its banner, checks an echo, and returns the pod named in the
// banner.
func bannerExchange(t *testing.T, p *pod, addr string) string {
	t.Helper()
	pod, err := tryBanner(p, addr)
	if err != nil {
		t.Fatalf("e2e: %s from %s: %v", addr, p.name, err)
	}
	return pod
}

func tryBanner(p *pod, addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.dial.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", errors.New("banner: " + err.Error())
	}
	pod, ok := strings.CutPrefix(strings.TrimSpace(line), "hello ")
	if !ok {
		return "", errors.New("banner " + line)
	}
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return "", err
	}
	echo, err := r.ReadString('\n')
	if err != nil || echo != "ping\n" {
		return "", errors.New("echo " + echo)
	}
	return pod, nil
}

// echoExchange sends size random bytes (binary, so detection calls them
// opaque at the first byte) and expects them back.
func echoExchange(t *testing.T, p *pod, addr string, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.dial.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("e2e: %s from %s: %v", addr, p.name, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	buf := make([]byte, size)
	_, _ = rand.Read(buf)
	buf[0] = 0 // never a TLS or HTTP start
	go func() {
		_, _ = c.Write(buf)
		_ = c.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("e2e: echo from %s: %v (after %d bytes)", addr, err, len(got))
	}
	if !bytes.Equal(got, buf) {
		t.Fatalf("e2e: echo from %s: got %d bytes, want the %d sent", addr, len(got), len(buf))
	}
}

// peerSPIFFEID starts a TLS handshake without SNI (as a mesh peer does)
// through d to addr, which the inbound capture sends to the proxy, and
// returns the URI SAN of the certificate it presents. The handshake then
// fails (no client certificate): only the server's certificate matters.
func peerSPIFFEID(t *testing.T, d nsDialer, addr string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	raw, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		t.Fatalf("e2e: %s from %s: %v", addr, d.path, err)
	}
	defer raw.Close()
	var id string
	tc := tls.Client(raw, &tls.Config{
		InsecureSkipVerify: true, // checked below: only the SAN is wanted
		MinVersion:         tls.VersionTLS13,
		VerifyPeerCertificate: func(chains [][]byte, _ [][]*x509.Certificate) error {
			if len(chains) == 0 {
				return errors.New("no certificate")
			}
			cert, err := x509.ParseCertificate(chains[0])
			if err != nil {
				return err
			}
			if len(cert.URIs) == 1 {
				id = cert.URIs[0].String()
			}
			return nil
		},
	})
	_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
	_ = tc.HandshakeContext(ctx)
	if id == "" {
		t.Fatalf("e2e: %s presented no certificate with one URI SAN", addr)
	}
	return id
}

// converge retries try until it succeeds (at most 30 s) and logs how long
// it took when that was more than a second. A new Service's first use
// waits for the destination's informers and the proxy's first resolution
// (bounded by its 1 s connect timeout, after which the request fails):
// the tests wait for that once, then count every failure.
func converge(t *testing.T, what string, try func() error) {
	t.Helper()
	begin := time.Now()
	var err error
	for attempt := 0; time.Since(begin) < 30*time.Second; attempt++ {
		if err = try(); err == nil {
			if d := time.Since(begin); d > time.Second {
				t.Logf("%s: first success after %v (%d failed attempts)", what, d.Round(time.Millisecond), attempt)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("e2e: %s: no success in 30s: %v", what, err)
}

// tryGet is one GET from inside p; any failure or non-200 is an error.
func tryGet(p *pod, url, host string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	if host != "" {
		req.Host = host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
	}
	return nil
}

// tryEcho is one echo exchange from inside p.
func tryEcho(p *pod, addr string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.dial.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	msg := []byte{0, 1, 2, 3, 0xff}
	if _, err := c.Write(msg); err != nil {
		return err
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil {
		return err
	}
	if !bytes.Equal(got, msg) {
		return fmt.Errorf("echo %x", got)
	}
	return nil
}

// tryGRPC is one health check from inside p.
func tryGRPC(p *pod, addr, authority string) error {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) { return p.dial.DialContext(ctx, "tcp", a) }),
	}
	if authority != "" {
		opts = append(opts, grpc.WithAuthority(authority))
	}
	cc, err := grpc.NewClient("passthrough:///"+addr, opts...)
	if err != nil {
		return err
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	return err
}
