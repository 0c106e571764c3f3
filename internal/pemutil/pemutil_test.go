package pemutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

func testPEM(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "t"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	k8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: k8})
}

func TestCertificatesAndKey(t *testing.T) {
	c, k := testPEM(t)
	certs, err := Certificates(append(append([]byte{}, c...), c...))
	if err != nil || len(certs) != 2 {
		t.Fatalf("two certificates: %d, %v", len(certs), err)
	}
	key, err := PrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	if !key.Public().(*ecdsa.PublicKey).Equal(certs[0].PublicKey) {
		t.Fatal("key does not match the certificate")
	}
}

func TestErrorsSayWhichBlock(t *testing.T) {
	c, k := testPEM(t)
	for _, tc := range []struct {
		name string
		in   []byte
		want string
	}{
		{"nothing", []byte("hello"), "no PEM CERTIFICATE block"},
		{"key in cert file", append(append([]byte{}, c...), k...), `PEM block 2 is "PRIVATE KEY"`},
		{"corrupt", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1, 2}}), "PEM block 1:"},
	} {
		if _, err := Certificates(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.want)
		}
	}
	if _, err := PrivateKey(c); err == nil || !strings.Contains(err.Error(), "want a private key") {
		t.Errorf("certificate as key: %v", err)
	}
	if _, err := PrivateKey(nil); err == nil {
		t.Error("empty key accepted")
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if certs, err := Certificates(b); err == nil && len(certs) == 0 {
			t.Fatal("no error and no certificate")
		}
		if k, err := PrivateKey(b); err == nil && k == nil {
			t.Fatal("no error and no key")
		}
	})
}
