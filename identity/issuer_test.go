package identity

import (
	"bytes"
	"crypto/x509"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

func TestParseIssuerRefuses(t *testing.T) {
	ca := newTestCA(t)
	other, err := NewRootCA(testTD.Name(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	otherIss, err := NewIssuer(other, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	cases := []struct {
		name               string
		anchors, cert, key []byte
		now                time.Time
		want               string
	}{
		{"ok", ca.root.CertPEM, ca.issuer.CertPEM, ca.issuer.KeyPEM, now, ""},
		{"issuer of another root", ca.root.CertPEM, otherIss.CertPEM, otherIss.KeyPEM, now, "does not chain to the trust anchors"},
		{"key of another issuer", ca.root.CertPEM, ca.issuer.CertPEM, otherIss.KeyPEM, now, "key does not match"},
		{"expired", ca.root.CertPEM, ca.issuer.CertPEM, ca.issuer.KeyPEM, now.Add(13 * time.Hour), "expired at"},
		{"not yet valid", ca.root.CertPEM, ca.issuer.CertPEM, ca.issuer.KeyPEM, now.Add(-time.Hour), "not valid before"},
		{"garbage anchors", []byte("nope"), ca.issuer.CertPEM, ca.issuer.KeyPEM, now, "trust anchors: no PEM"},
		{"key in cert file", ca.root.CertPEM, ca.issuer.KeyPEM, ca.issuer.KeyPEM, now, `"PRIVATE KEY", want CERTIFICATE`},
		{"cert in key file", ca.root.CertPEM, ca.issuer.CertPEM, ca.issuer.CertPEM, now, "want a private key"},
		{"root as its own issuer", ca.root.CertPEM, ca.root.CertPEM, ca.root.KeyPEM, now, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseIssuer(tc.anchors, tc.cert, tc.key, tc.now)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func TestParseIssuerLeafIsNotCA(t *testing.T) {
	ca := newTestCA(t)
	is := ca.parse(t)
	key := p256Key(t)
	id := mustID("spiffe://meshlet.test/ns/a/sa/b")
	csr, err := ValidateCSR(csrFor(t, key, x509.CertificateRequest{}, id.String()), id)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := is.Sign(csr, id, SignOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := pemCert(leaf)
	keyPEM := pemKey(t, key)
	if _, err := ParseIssuer(ca.root.CertPEM, append(leafPEM, ca.issuer.CertPEM...), keyPEM, time.Now()); err == nil || !strings.Contains(err.Error(), "not a CA") {
		t.Fatalf("leaf accepted as issuer: %v", err)
	}
}

func TestSignProducesSVID(t *testing.T) {
	ca := newTestCA(t)
	is := ca.parse(t)
	id := mustID("spiffe://meshlet.test/ns/shop/sa/web")
	key := p256Key(t)
	csr, err := ValidateCSR(csrFor(t, key, x509.CertificateRequest{}, id.String()), id)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	leaf, err := is.Sign(csr, id, SignOptions{Lifetime: 24 * time.Hour, Backdate: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if got := leaf.NotBefore; !got.Equal(now.Add(-time.Minute).Truncate(time.Second)) {
		t.Errorf("NotBefore %s, want %s", got, now.Add(-time.Minute))
	}
	// The issuer lives 12h: the 24h leaf must stop with it.
	if !leaf.NotAfter.Equal(is.Certificate().NotAfter) {
		t.Errorf("NotAfter %s, want the issuer's %s", leaf.NotAfter, is.Certificate().NotAfter)
	}
	if leaf.KeyUsage != x509.KeyUsageDigitalSignature {
		t.Errorf("KeyUsage %v", leaf.KeyUsage)
	}
	if len(leaf.ExtKeyUsage) != 2 || leaf.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || leaf.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
		t.Errorf("ExtKeyUsage %v", leaf.ExtKeyUsage)
	}
	if leaf.IsCA || len(leaf.DNSNames)+len(leaf.IPAddresses)+len(leaf.EmailAddresses) != 0 || len(leaf.URIs) != 1 {
		t.Errorf("unexpected names or CA flag: %+v", leaf)
	}
	if leaf.SerialNumber.BitLen() < 100 {
		t.Errorf("serial %s has %d bits; want ~128 random bits", leaf.SerialNumber, leaf.SerialNumber.BitLen())
	}
	bundle := x509bundle.FromX509Authorities(testTD, is.Anchors())
	chain := append([]*x509.Certificate{leaf}, is.Chain()...)
	got, _, err := x509svid.Verify(chain, bundle)
	if err != nil {
		t.Fatal(err)
	}
	if got != id {
		t.Fatalf("SVID ID %s, want %s", got, id)
	}
	// A second leaf gets another serial.
	leaf2, err := is.Sign(csr, id, SignOptions{Lifetime: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
		t.Fatal("two leaves share a serial number")
	}
	if !bytes.Equal(leaf2.RawSubjectPublicKeyInfo, leaf.RawSubjectPublicKeyInfo) {
		t.Fatal("leaf key is not the CSR's")
	}
}

func TestSignAfterIssuerExpiry(t *testing.T) {
	ca := newTestCA(t)
	is := ca.parse(t)
	id := mustID("spiffe://meshlet.test/ns/a/sa/b")
	csr, err := ValidateCSR(csrFor(t, p256Key(t), x509.CertificateRequest{}, id.String()), id)
	if err != nil {
		t.Fatal(err)
	}
	_, err = is.Sign(csr, id, SignOptions{Lifetime: time.Hour, Now: is.Certificate().NotAfter.Add(time.Second)})
	if code, reason := Classify(err); reason != "issuer_unavailable" {
		t.Fatalf("error %v classified %s/%s, want issuer_unavailable", err, code, reason)
	}
}

func TestEffectiveBackdate(t *testing.T) {
	for in, want := range map[time.Duration]time.Duration{0: DefaultBackdate, -time.Second: 0, 5 * time.Minute: 5 * time.Minute} {
		if got := effectiveBackdate(in); got != want {
			t.Errorf("effectiveBackdate(%s) = %s, want %s", in, got, want)
		}
	}
}
