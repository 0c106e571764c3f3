package validate

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"net"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

func TestCSR(t *testing.T) {
	id := mustID("spiffe://meshlet.test/ns/shop/sa/web")
	p256 := p256Key(t)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	good := csrFor(t, p256, x509.CertificateRequest{}, id.String())
	badSig := append([]byte(nil), good...)
	badSig[len(badSig)-5] ^= 0xff

	cases := []struct {
		name string
		der  []byte
		want error
	}{
		{"ok", good, nil},
		{"ok with a subject", csrFor(t, p256, x509.CertificateRequest{Subject: pkix.Name{CommonName: "web"}}, id.String()), nil},
		{"empty", nil, ErrCSRParse},
		{"garbage", []byte("this is not a csr"), ErrCSRParse},
		{"truncated", good[:len(good)/2], ErrCSRParse},
		{"too big", make([]byte, MaxCSRSize+1), ErrCSRParse},
		{"bad signature", badSig, ErrCSRSignature},
		{"P-384", csrFor(t, p384, x509.CertificateRequest{}, id.String()), ErrCSRKeyType},
		{"RSA", csrFor(t, rsaKey, x509.CertificateRequest{}, id.String()), ErrCSRKeyType},
		{"Ed25519", csrFor(t, edKey, x509.CertificateRequest{}, id.String()), ErrCSRKeyType},
		{"DNS SAN", csrFor(t, p256, x509.CertificateRequest{DNSNames: []string{"web.shop.svc"}}, id.String()), ErrCSRExtraSANs},
		{"IP SAN", csrFor(t, p256, x509.CertificateRequest{IPAddresses: []net.IP{net.IPv4(10, 0, 0, 1)}}, id.String()), ErrCSRExtraSANs},
		{"email SAN", csrFor(t, p256, x509.CertificateRequest{EmailAddresses: []string{"a@b.c"}}, id.String()), ErrCSRExtraSANs},
		{"two URIs", csrFor(t, p256, x509.CertificateRequest{}, id.String(), "spiffe://meshlet.test/ns/shop/sa/admin"), ErrCSRExtraSANs},
		{"no URI", csrFor(t, p256, x509.CertificateRequest{}), ErrCSRIdentity},
		{"other identity", csrFor(t, p256, x509.CertificateRequest{}, "spiffe://meshlet.test/ns/shop/sa/admin"), ErrCSRIdentity},
		{"other trust domain", csrFor(t, p256, x509.CertificateRequest{}, "spiffe://evil.test/ns/shop/sa/web"), ErrCSRIdentity},
		{"https URI", csrFor(t, p256, x509.CertificateRequest{}, "https://meshlet.test/ns/shop/sa/web"), ErrCSRIdentity},
		{"trailing slash", csrFor(t, p256, x509.CertificateRequest{}, id.String()+"/"), ErrCSRIdentity},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			csr, err := CSR(tc.der, id)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				if csr == nil {
					t.Fatal("nil CSR without error")
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
		})
	}
}

// FuzzCSR feeds arbitrary bytes to the CSR checks: they must never panic,
// and anything accepted must really be a P-256 CSR naming exactly the ID.
func FuzzCSR(f *testing.F) {
	id := spiffeid.RequireFromString("spiffe://meshlet.test/ns/shop/sa/web")
	key := p256Key(f)
	f.Add(csrFor(f, key, x509.CertificateRequest{}, id.String()))
	f.Add(csrFor(f, key, x509.CertificateRequest{DNSNames: []string{"x"}}, id.String()))
	f.Add(csrFor(f, key, x509.CertificateRequest{}, id.String(), "spiffe://meshlet.test/x"))
	f.Add([]byte{0x30, 0x82, 0x01, 0x00})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, der []byte) {
		csr, err := CSR(der, id)
		if err != nil {
			known := false
			for _, s := range []error{ErrCSRParse, ErrCSRSignature, ErrCSRKeyType, ErrCSRExtraSANs, ErrCSRIdentity} {
				known = known || errors.Is(err, s)
			}
			if !known {
				t.Fatalf("CSR error of no known class: %v", err)
			}
			return
		}
		if err := csr.CheckSignature(); err != nil {
			t.Fatalf("accepted a CSR with a bad signature: %v", err)
		}
		pub, ok := csr.PublicKey.(*ecdsa.PublicKey)
		if !ok || pub.Curve != elliptic.P256() {
			t.Fatalf("accepted key %T", csr.PublicKey)
		}
		if len(csr.URIs) != 1 || csr.URIs[0].String() != id.String() || len(csr.DNSNames)+len(csr.IPAddresses)+len(csr.EmailAddresses) != 0 {
			t.Fatalf("accepted names %v %v %v %v", csr.URIs, csr.DNSNames, csr.IPAddresses, csr.EmailAddresses)
		}
	})
}
