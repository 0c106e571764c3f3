package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

var testTD = spiffeid.RequireTrustDomainFromString("meshlet.test")

// testCA is a real root and issuer written to files in a temp dir.
type testCA struct {
	root, issuer KeyPair
	files        IssuerFiles
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	return newTestCAFor(t, testTD.Name())
}

func newTestCAFor(t testing.TB, trustDomain string) *testCA {
	t.Helper()
	root, err := NewRootCA(trustDomain, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	iss, err := NewIssuer(root, 12*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ca := &testCA{root: root, issuer: iss, files: IssuerFiles{
		AnchorsFile: filepath.Join(dir, "ca.crt"),
		CertFile:    filepath.Join(dir, "issuer.crt"),
		KeyFile:     filepath.Join(dir, "issuer.key"),
	}}
	ca.write(t, root.CertPEM, iss)
	return ca
}

func (ca *testCA) write(t testing.TB, anchors []byte, iss KeyPair) {
	t.Helper()
	for path, b := range map[string][]byte{ca.files.AnchorsFile: anchors, ca.files.CertFile: iss.CertPEM, ca.files.KeyFile: iss.KeyPEM} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func (ca *testCA) parse(t testing.TB) *Issuer {
	t.Helper()
	is, err := ParseIssuer(ca.root.CertPEM, ca.issuer.CertPEM, ca.issuer.KeyPEM, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func p256Key(t testing.TB) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// csrFor returns a DER CSR signed by key with the given URI SANs and
// whatever else tmpl carries.
func csrFor(t testing.TB, key crypto.Signer, tmpl x509.CertificateRequest, uris ...string) []byte {
	t.Helper()
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

func mustID(s string) spiffeid.ID { return spiffeid.RequireFromString(s) }
