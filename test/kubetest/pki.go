package kubetest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// certValidity bounds every certificate the harness mints. A test package
// never runs for a day; a short life keeps a leaked state dir harmless.
const certValidity = 24 * time.Hour

// authority is a throwaway certificate authority. The cluster's CA signs the
// apiserver's serving certificate and every client certificate; tests can
// make their own (for a webhook server, say) with newAuthority.
type authority struct {
	cert    *x509.Certificate
	key     crypto.Signer
	certPEM []byte
}

func newAuthority(commonName string) (*authority, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kubetest: generate CA key: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-time.Minute), // tolerate small clock steps
		NotAfter:              now.Add(certValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("kubetest: self-sign CA: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("kubetest: parse CA: %w", err)
	}
	return &authority{cert: cert, key: key, certPEM: pemBlock("CERTIFICATE", der)}, nil
}

// leaf is a certificate and its key, both PEM-encoded.
type leaf struct {
	certPEM, keyPEM []byte
}

// leafSpec says what a leaf certificate is for.
type leafSpec struct {
	commonName    string
	organizations []string // groups, for a Kubernetes client certificate
	dnsNames      []string
	ips           []net.IP
	server        bool // serverAuth; otherwise clientAuth
}

func (a *authority) issue(spec leafSpec) (*leaf, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kubetest: generate key for %q: %w", spec.commonName, err)
	}
	usage := x509.ExtKeyUsageClientAuth
	if spec.server {
		usage = x509.ExtKeyUsageServerAuth
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: spec.commonName, Organization: spec.organizations},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     now.Add(certValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
		DNSNames:     spec.dnsNames,
		IPAddresses:  spec.ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, key.Public(), a.key)
	if err != nil {
		return nil, fmt.Errorf("kubetest: sign certificate for %q: %w", spec.commonName, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("kubetest: encode key for %q: %w", spec.commonName, err)
	}
	return &leaf{certPEM: pemBlock("CERTIFICATE", der), keyPEM: pemBlock("PRIVATE KEY", keyDER)}, nil
}

// clusterPKI is everything the apiserver needs, written to files.
type clusterPKI struct {
	ca       *authority
	caFile   string
	admin    *leaf
	certFile string // apiserver serving certificate
	keyFile  string
	saKey    string // service-account signing key (PKCS#8)
	saPub    string // its public half (PKIX), which verifies tokens
}

// apiserverNames are the names a client may use for the apiserver: the
// loopback ones tests use, and the in-cluster ones a manifest may carry.
var apiserverNames = []string{
	"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
	"kubernetes.default.svc.cluster.local",
}

func writePKI(dir string) (*clusterPKI, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("kubetest: %w", err)
	}
	ca, err := newAuthority("meshlet-kubetest-ca")
	if err != nil {
		return nil, err
	}
	serving, err := ca.issue(leafSpec{
		commonName: "kube-apiserver",
		dnsNames:   apiserverNames,
		// 10.96.0.1 is the first address of --service-cluster-ip-range, the
		// ClusterIP of the "kubernetes" Service.
		ips:    []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback, net.IPv4(10, 96, 0, 1)},
		server: true,
	})
	if err != nil {
		return nil, err
	}
	admin, err := ca.issue(leafSpec{commonName: "meshlet-kubetest-admin", organizations: []string{"system:masters"}})
	if err != nil {
		return nil, err
	}
	saKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("kubetest: generate service-account key: %w", err)
	}
	saKeyDER, err := x509.MarshalPKCS8PrivateKey(saKey)
	if err != nil {
		return nil, fmt.Errorf("kubetest: encode service-account key: %w", err)
	}
	saPubDER, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return nil, fmt.Errorf("kubetest: encode service-account public key: %w", err)
	}
	p := &clusterPKI{
		ca:       ca,
		caFile:   filepath.Join(dir, "ca.crt"),
		admin:    admin,
		certFile: filepath.Join(dir, "apiserver.crt"),
		keyFile:  filepath.Join(dir, "apiserver.key"),
		saKey:    filepath.Join(dir, "sa.key"),
		saPub:    filepath.Join(dir, "sa.pub"),
	}
	files := []struct {
		path string
		data []byte
	}{
		{p.caFile, ca.certPEM},
		{p.certFile, serving.certPEM},
		{p.keyFile, serving.keyPEM},
		{p.saKey, pemBlock("PRIVATE KEY", saKeyDER)},
		{p.saPub, pemBlock("PUBLIC KEY", saPubDER)},
	}
	for _, f := range files {
		if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
			return nil, fmt.Errorf("kubetest: %w", err)
		}
	}
	return p, nil
}

func pemBlock(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		// crypto/rand does not fail on Linux; a constant serial would only
		// matter to a client caching certificates by serial.
		return big.NewInt(time.Now().UnixNano())
	}
	return n
}
