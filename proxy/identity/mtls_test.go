package identity

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	caid "github.com/meshlet/meshlet/identity"
	"github.com/meshlet/meshlet/proxy/meshtls"
)

// mtlsServer is an HTTPS server on loopback whose TLS is meshtls over src;
// it answers with the verified client identity.
func mtlsServer(t testing.TB, src meshtls.Source) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id, ok := meshtls.PeerID(*r.TLS)
			if !ok {
				http.Error(w, "no peer id", http.StatusForbidden)
				return
			}
			fmt.Fprint(w, id.String())
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	tlsLis := tls.NewListener(lis, meshtls.ServerConfig(src, meshtls.ALPNHTTP1))
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(tlsLis) }()
	t.Cleanup(func() { srv.Close(); <-done })
	return lis.Addr().String()
}

// mtlsClient returns an HTTP client that originates mTLS from src and
// accepts only peer; keep-alives are off so every request is a handshake.
func mtlsClient(src meshtls.Source, peer string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   meshtls.ClientConfig(src, spiffeid.RequireFromString(peer), meshtls.ALPNHTTP1),
			DisableKeepAlives: true,
		},
	}
}

func get(c *http.Client, addr string) (string, *tls.ConnectionState, error) {
	resp, err := c.Get("https://" + addr + "/")
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != 200 {
		return "", nil, fmt.Errorf("status %d: %s", resp.StatusCode, b)
	}
	return string(b), resp.TLS, nil
}

func TestMTLSBetweenProxies(t *testing.T) {
	s := startIdentity(t, time.Hour, webID, dbID)
	web, db := startClient(t, s, webID), startClient(t, s, dbID)
	waitReady(t, web)
	waitReady(t, db)
	dbAddr := mtlsServer(t, db)

	// web → db, expecting db: works, and db sees web's identity.
	body, cs, err := get(mtlsClient(web, dbID), dbAddr)
	if err != nil {
		t.Fatal(err)
	}
	if body != webID {
		t.Fatalf("server saw client %q, want %s", body, webID)
	}
	if cs.Version != tls.VersionTLS13 {
		t.Fatalf("TLS version %x, want 1.3", cs.Version)
	}
	if id, _ := meshtls.PeerID(*cs); id.String() != dbID {
		t.Fatalf("client saw server %s, want %s", id, dbID)
	}

	// web → db, expecting someone else: db's certificate is valid but for
	// the wrong identity, so the client refuses it.
	if _, _, err := get(mtlsClient(web, "spiffe://meshlet.test/ns/shop/sa/payments"), dbAddr); err == nil ||
		!strings.Contains(err.Error(), "unexpected ID") {
		t.Fatalf("wrong server identity accepted: %v", err)
	}

	// A proxy of another mesh (another root, same trust domain name) has a
	// valid certificate that does not chain to our anchors: db refuses it.
	otherRoot, err := caid.NewRootCA(td, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherSrv := startIdentityWithRoot(t, otherRoot, time.Hour, webID)
	intruder := startClient(t, otherSrv, webID)
	waitReady(t, intruder)
	c := mtlsClient(intruder, dbID)
	if _, _, err := get(c, dbAddr); err == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
}

// TestRotationUnderLoad: with 5-second certificates, requests run
// back-to-back for 30s, each on a new TLS connection; every one must
// succeed while both sides' certificates rotate several times.
func TestRotationUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("30s load test")
	}
	s := startIdentity(t, 5*time.Second, webID, dbID)
	web, db := startClient(t, s, webID), startClient(t, s, dbID)
	waitReady(t, web)
	waitReady(t, db)
	dbAddr := mtlsServer(t, db)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var (
		ok, failed atomic.Int64
		mu         sync.Mutex
		serials    = map[string]bool{}
		firstErr   error
		wg         sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			c := mtlsClient(web, dbID)
			for ctx.Err() == nil {
				body, cs, err := get(c, dbAddr)
				if err == nil && body != webID {
					err = fmt.Errorf("server saw %q", body)
				}
				if err != nil {
					failed.Add(1)
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
				mu.Lock()
				serials[cs.PeerCertificates[0].SerialNumber.String()] = true
				mu.Unlock()
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
	wg.Wait()
	renewals := value(t, web.metrics.renewals)
	t.Logf("%d requests ok, %d failed; %d server certificates seen; web renewed %v times, db %v times",
		ok.Load(), failed.Load(), len(serials), renewals, value(t, db.metrics.renewals))
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed, first: %v", failed.Load(), firstErr)
	}
	if ok.Load() < 100 {
		t.Fatalf("only %d requests in 30s", ok.Load())
	}
	// 30s / (0.7 × 5s) ≈ 8 renewals; demand at least 5 on each side.
	if len(serials) < 5 || renewals < 5 {
		t.Fatalf("too few rotations: %d server certificates, %v client renewals", len(serials), renewals)
	}
}
