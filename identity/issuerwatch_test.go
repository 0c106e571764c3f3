package identity

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func TestIssuerWatcherReloads(t *testing.T) {
	ca := newTestCA(t)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	var logs syncBuffer
	w, err := NewIssuerWatcher(ca.files, m, slog.New(slog.NewTextHandler(&logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	first := w.Current()
	if got := value(t, m.issuerExpiry); got != float64(first.Certificate().NotAfter.Unix()) {
		t.Fatalf("expiry gauge %v", got)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { w.Run(ctx, 20*time.Millisecond) })
	defer func() { cancel(); wg.Wait() }()

	// A bad issuer (another root's) is refused; the old one stays.
	other, err := NewRootCA(testTD.Name(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bad, err := NewIssuer(other, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca.write(t, ca.root.CertPEM, bad)
	waitFor(t, func() bool { return value(t, m.issuerReloads.WithLabelValues("error")) >= 1 })
	if w.Current() != first {
		t.Fatal("bad issuer replaced the good one")
	}
	if !strings.Contains(logs.String(), "does not chain to the trust anchors") {
		t.Fatalf("refusal not logged clearly: %s", logs.String())
	}

	// A good new issuer (rotated by cert-manager) is swapped in.
	next, err := NewIssuer(ca.root, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca.write(t, ca.root.CertPEM, next)
	waitFor(t, func() bool { return w.Current() != first })
	if !bytes.Equal(pemCert(w.Current().Certificate()), next.CertPEM) {
		t.Fatal("new issuer not in use")
	}
	if got := value(t, m.issuerExpiry); got != float64(w.Current().Certificate().NotAfter.Unix()) {
		t.Fatalf("expiry gauge not updated: %v", got)
	}
	if got := value(t, m.issuerReloads.WithLabelValues("ok")); got != 2 {
		t.Fatalf("ok reloads %v, want 2", got)
	}

	// A missing file is an error, not a crash, and changes nothing.
	cur := w.Current()
	if err := os.Remove(ca.files.KeyFile); err != nil {
		t.Fatal(err)
	}
	before := value(t, m.issuerReloads.WithLabelValues("error"))
	waitFor(t, func() bool { return value(t, m.issuerReloads.WithLabelValues("error")) > before })
	if w.Current() != cur {
		t.Fatal("issuer changed while a file was missing")
	}
}

func TestNewIssuerWatcherFailsOnBadFiles(t *testing.T) {
	ca := newTestCA(t)
	if err := os.WriteFile(ca.files.CertFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := NewIssuerWatcher(ca.files, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), ca.files.CertFile) || !strings.Contains(err.Error(), "issuer certificate") {
		t.Fatalf("error %v should name the issuer certificate file", err)
	}
}

func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
