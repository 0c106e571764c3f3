package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// servedSerial does a real TLS handshake with the server and returns the
// serial number of the certificate it presented.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestCertReloadOnChange(t *testing.T) {
	ca := newTestCA(t)
	dir := t.TempDir()
	c1, k1 := ca.issue(t, 101)
	certFile, keyFile := writePair(t, dir, c1, k1)
	var reloadErrors atomic.Int32
	r, err := NewCertReloader(certFile, keyFile, func(error) { reloadErrors.Add(1) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	watchDone := make(chan struct{})
	go func() { defer close(watchDone); r.Watch(ctx, 20*time.Millisecond, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); <-watchDone }()

	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{GetCertificate: r.GetCertificate})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				_ = c.(*tls.Conn).Handshake()
				_, _ = io.Copy(io.Discard, c)
			}(c)
		}
	}()
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	addr := ln.Addr().String()

	if s := servedSerial(t, addr, roots); s != 101 {
		t.Fatalf("serving serial %d, want 101", s)
	}
	waitSerial := func(want int64) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for servedSerial(t, addr, roots) != want {
			if time.Now().After(deadline) {
				t.Fatalf("certificate %d not served within 5s", want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	// A renewed pair is picked up without a restart.
	c2, k2 := ca.issue(t, 102)
	writePair(t, dir, c2, k2)
	waitSerial(102)

	// A broken pair (key of another cert) is refused and counted; the
	// current one stays.
	c3, _ := ca.issue(t, 103)
	_, kOther := ca.issue(t, 104)
	writePair(t, dir, c3, kOther)
	deadline := time.Now().Add(5 * time.Second)
	for reloadErrors.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("bad pair not reported")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := servedSerial(t, addr, roots); s != 102 {
		t.Errorf("after a bad pair serving %d, want 102 still", s)
	}

	// Kubernetes Secret volumes swap a symlinked directory: follow it.
	c5, k5 := ca.issue(t, 105)
	data := filepath.Join(dir, "..data2")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatal(err)
	}
	writePair(t, data, c5, k5)
	for _, f := range []string{"tls.crt", "tls.key"} {
		tmp := filepath.Join(dir, f+".link")
		if err := os.Symlink(filepath.Join(data, f), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, f)); err != nil {
			t.Fatal(err)
		}
	}
	waitSerial(105)
}

func TestCertReloaderNeedsAPair(t *testing.T) {
	dir := t.TempDir()
	if _, err := NewCertReloader(filepath.Join(dir, "missing.crt"), filepath.Join(dir, "missing.key"), nil); err == nil {
		t.Error("missing files accepted")
	}
	bad := filepath.Join(dir, "bad")
	_ = os.WriteFile(bad, []byte("not pem"), 0o600)
	if _, err := NewCertReloader(bad, bad, nil); err == nil {
		t.Error("garbage accepted")
	}
}

func TestMeshConfigMerge(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "mesh.yaml")
	anchors := filepath.Join(dir, "anchors.pem")
	_ = os.WriteFile(file, []byte("proxyImage: from-file/proxy\ntrustDomain: file.example\nsidecar: container\n"), 0o600)
	_ = os.WriteFile(anchors, []byte("-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n"), 0o600)
	c := Config{MeshConfigFile: file, TrustAnchorsFile: anchors}
	c.Mesh.TrustDomain = "flag.example"
	m, err := c.MeshConfig()
	if err != nil {
		t.Fatal(err)
	}
	if m.ProxyImage != "from-file/proxy" || m.TrustDomain != "flag.example" || m.Sidecar != "container" || m.TrustAnchorsPEM == "" || m.ControlPlaneNamespace != "meshlet" {
		t.Errorf("merged config %+v", m)
	}
	_ = os.WriteFile(file, []byte("proxyImage: x\ntrustAnchorsPEM: y\nunknownField: 1\n"), 0o600)
	if _, err := (Config{MeshConfigFile: file}).MeshConfig(); err == nil {
		t.Error("unknown field in the mesh config accepted")
	}
	if _, err := (Config{}).MeshConfig(); err == nil {
		t.Error("empty config (no image, no anchors) accepted")
	}
}
