package meshctl

import (
	"fmt"
	"os"
	"time"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/identity"
	"github.com/meshlet/meshlet/internal/pemutil"
)

// pkiOptions are install's key-material flags. Each group (trust anchor +
// issuer, webhook) is either given whole or generated whole.
type pkiOptions struct {
	trustAnchorsFile  string
	trustAnchorKey    string // key of the (first) trust anchor: issue a new issuer from it
	trustAnchorKeyOut string // where to write a generated trust anchor's key
	issuerCertFile    string
	issuerKeyFile     string
	anchorLifetime    time.Duration
	issuerLifetime    time.Duration
	webhookCAFile     string
	webhookCertFile   string
	webhookKeyFile    string
}

// webhookLifetime of a generated webhook CA and serving certificate.
// `meshctl check` warns 60 days before it ends; re-running install (and
// applying it) renews it.
const webhookLifetime = 365 * 24 * time.Hour

// webhookDNSNames are the names the API server may use for the injector's
// Service; it dials <svc>.<ns>.svc.
func webhookDNSNames(ns, clusterDomain string) []string {
	return []string{
		"meshlet-injector." + ns + ".svc",
		"meshlet-injector." + ns + ".svc." + clusterDomain,
		"meshlet-injector." + ns,
	}
}

// build returns the PKI to install: read from the given files, or
// generated. Everything read is checked (parses, key matches, chains,
// not expired) so a mistake shows here and not as a broken mesh.
func (o *pkiOptions) build(ns, trustDomain, clusterDomain string, now time.Time) (deploy.PKI, error) {
	var p deploy.PKI
	if err := o.identityPKI(&p, trustDomain, now); err != nil {
		return p, err
	}
	if err := o.webhookPKI(&p, ns, clusterDomain, now); err != nil {
		return p, err
	}
	return p, nil
}

func (o *pkiOptions) identityPKI(p *deploy.PKI, trustDomain string, now time.Time) error {
	given := o.trustAnchorsFile != "" || o.issuerCertFile != "" || o.issuerKeyFile != ""
	switch {
	case !given && o.trustAnchorKey != "":
		return fmt.Errorf("--identity-trust-anchor-key-file needs --identity-trust-anchors-file")
	case !given:
		root, err := identity.NewRootCA(trustDomain, o.anchorLifetime)
		if err != nil {
			return err
		}
		if o.trustAnchorKeyOut != "" {
			if err := os.WriteFile(o.trustAnchorKeyOut, root.KeyPEM, 0o600); err != nil {
				return fmt.Errorf("write trust anchor key: %w", err)
			}
		}
		issuer, err := identity.NewIssuer(root, o.issuerLifetime)
		if err != nil {
			return err
		}
		p.TrustAnchorsPEM, p.IssuerCertPEM, p.IssuerKeyPEM = string(root.CertPEM), string(issuer.CertPEM), string(issuer.KeyPEM)
		return nil
	case o.trustAnchorsFile == "":
		return fmt.Errorf("--identity-issuer-certificate-file and --identity-issuer-key-file need --identity-trust-anchors-file")
	}
	anchorsPEM, err := os.ReadFile(o.trustAnchorsFile)
	if err != nil {
		return fmt.Errorf("trust anchors: %w", err)
	}
	anchors, err := pemutil.Certificates(anchorsPEM)
	if err != nil {
		return fmt.Errorf("trust anchors %s: %w", o.trustAnchorsFile, err)
	}
	for _, a := range anchors {
		if !a.IsCA {
			return fmt.Errorf("trust anchors %s: %q is not a CA certificate", o.trustAnchorsFile, a.Subject.CommonName)
		}
	}
	p.TrustAnchorsPEM = string(anchorsPEM)
	switch {
	case o.issuerCertFile == "" && o.issuerKeyFile == "" && o.trustAnchorKey != "":
		// Rotation: a new issuer from the trust anchor kept outside.
		keyPEM, err := os.ReadFile(o.trustAnchorKey)
		if err != nil {
			return fmt.Errorf("trust anchor key: %w", err)
		}
		first, _ := pemutil.Certificates(anchorsPEM) // parsed above
		key, err := pemutil.PrivateKey(keyPEM)
		if err != nil {
			return fmt.Errorf("trust anchor key %s: %w", o.trustAnchorKey, err)
		}
		if !keyMatches(first[0], key) {
			return fmt.Errorf("trust anchor key %s does not belong to the first certificate of %s", o.trustAnchorKey, o.trustAnchorsFile)
		}
		firstPEM := encodeCert(first[0].Raw)
		issuer, err := identity.NewIssuer(identity.KeyPair{CertPEM: []byte(firstPEM), KeyPEM: keyPEM}, o.issuerLifetime)
		if err != nil {
			return err
		}
		p.IssuerCertPEM, p.IssuerKeyPEM = string(issuer.CertPEM), string(issuer.KeyPEM)
		return nil
	case o.issuerCertFile == "" || o.issuerKeyFile == "":
		return fmt.Errorf("give both --identity-issuer-certificate-file and --identity-issuer-key-file (or --identity-trust-anchor-key-file to generate the issuer)")
	}
	certPEM, err := os.ReadFile(o.issuerCertFile)
	if err != nil {
		return fmt.Errorf("issuer certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(o.issuerKeyFile)
	if err != nil {
		return fmt.Errorf("issuer key: %w", err)
	}
	certs, err := pemutil.Certificates(certPEM)
	if err != nil {
		return fmt.Errorf("issuer certificate %s: %w", o.issuerCertFile, err)
	}
	key, err := pemutil.PrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("issuer key %s: %w", o.issuerKeyFile, err)
	}
	if !certs[0].IsCA {
		return fmt.Errorf("issuer certificate %s is not a CA certificate", o.issuerCertFile)
	}
	if !keyMatches(certs[0], key) {
		return fmt.Errorf("issuer key %s does not belong to issuer certificate %s", o.issuerKeyFile, o.issuerCertFile)
	}
	if err := verifyChain(certs[0], certs[1:], anchors, "", now); err != nil {
		return fmt.Errorf("issuer certificate %s does not chain to the trust anchors: %w", o.issuerCertFile, err)
	}
	p.IssuerCertPEM, p.IssuerKeyPEM = string(certPEM), string(keyPEM)
	return nil
}

func (o *pkiOptions) webhookPKI(p *deploy.PKI, ns, clusterDomain string, now time.Time) error {
	n := 0
	for _, f := range []string{o.webhookCAFile, o.webhookCertFile, o.webhookKeyFile} {
		if f != "" {
			n++
		}
	}
	names := webhookDNSNames(ns, clusterDomain)
	switch n {
	case 0:
		var err error
		p.WebhookCAPEM, p.WebhookCertPEM, p.WebhookKeyPEM, err = webhookPKI(names, now, webhookLifetime)
		if err != nil {
			return fmt.Errorf("webhook certificate: %w", err)
		}
		return nil
	case 3:
	default:
		return fmt.Errorf("give all of --webhook-ca-file, --webhook-cert-file and --webhook-key-file, or none")
	}
	read := func(path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("webhook: %w", err)
		}
		return b, nil
	}
	caPEM, err := read(o.webhookCAFile)
	if err != nil {
		return err
	}
	certPEM, err := read(o.webhookCertFile)
	if err != nil {
		return err
	}
	keyPEM, err := read(o.webhookKeyFile)
	if err != nil {
		return err
	}
	cas, err := pemutil.Certificates(caPEM)
	if err != nil {
		return fmt.Errorf("webhook CA %s: %w", o.webhookCAFile, err)
	}
	certs, err := pemutil.Certificates(certPEM)
	if err != nil {
		return fmt.Errorf("webhook certificate %s: %w", o.webhookCertFile, err)
	}
	key, err := pemutil.PrivateKey(keyPEM)
	if err != nil {
		return fmt.Errorf("webhook key %s: %w", o.webhookKeyFile, err)
	}
	if !keyMatches(certs[0], key) {
		return fmt.Errorf("webhook key %s does not belong to webhook certificate %s", o.webhookKeyFile, o.webhookCertFile)
	}
	if err := verifyChain(certs[0], certs[1:], cas, names[0], now); err != nil {
		return fmt.Errorf("webhook certificate %s is not valid for %s under %s: %w", o.webhookCertFile, names[0], o.webhookCAFile, err)
	}
	p.WebhookCAPEM, p.WebhookCertPEM, p.WebhookKeyPEM = string(caPEM), string(certPEM), string(keyPEM)
	return nil
}
