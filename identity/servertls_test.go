package identity

import (
	"crypto/x509"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// TestSelfCertFollowsIssuer: the serving certificate is an SVID for the
// server identity, cached, and re-issued as soon as the issuer rotates.
func TestSelfCertFollowsIssuer(t *testing.T) {
	ca := newTestCA(t)
	w, err := NewIssuerWatcher(ca.files, NewMetrics(prometheus.NewRegistry()), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	id := mustID("spiffe://meshlet.test/ns/meshlet/sa/meshlet-identity")
	sc, err := newSelfCert(id, w, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	first, err := sc.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := sc.GetCertificate(nil)
	if again != first {
		t.Fatal("certificate re-issued without reason")
	}
	verify := func(raw [][]byte) *x509.Certificate {
		t.Helper()
		got, chains, err := x509svid.ParseAndVerify(raw, x509bundle.FromX509Authorities(testTD, w.Current().Anchors()))
		if err != nil {
			t.Fatal(err)
		}
		if got != id {
			t.Fatalf("serving certificate for %s, want %s", got, id)
		}
		return chains[0][1]
	}
	if iss := verify(first.Certificate); !iss.Equal(w.Current().Certificate()) {
		t.Fatal("not signed by the current issuer")
	}
	next, err := NewIssuer(ca.root, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	ca.write(t, ca.root.CertPEM, next)
	// New content is applied when two polls in a row see it.
	if changed, err := w.reload(); err != nil || changed {
		t.Fatalf("first poll of new content: %v %v", changed, err)
	}
	if changed, err := w.reload(); err != nil || !changed {
		t.Fatalf("second poll: %v %v", changed, err)
	}
	second, err := sc.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if second == first {
		t.Fatal("certificate not re-issued after issuer rotation")
	}
	if iss := verify(second.Certificate); !iss.Equal(w.Current().Certificate()) {
		t.Fatal("re-issued certificate not signed by the new issuer")
	}
}
