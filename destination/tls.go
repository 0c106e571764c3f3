package destination

import (
	"crypto/tls"
	"fmt"
	"os"
	"sync"
	"time"
)

// certFiles serves a certificate and key from files and reloads them when
// either file changes, so a rotated certificate (a Secret updated by
// cert-manager or by `meshctl install`) needs no restart.
type certFiles struct {
	certFile, keyFile string

	mu      sync.Mutex
	cert    *tls.Certificate
	modTime [2]time.Time
}

func newCertFiles(certFile, keyFile string) (*certFiles, error) {
	c := &certFiles{certFile: certFile, keyFile: keyFile}
	if _, err := c.get(); err != nil {
		return nil, err
	}
	return c, nil
}

// get returns the current certificate, re-reading the files when their
// modification times changed. A failed reload keeps the previous one.
func (c *certFiles) get() (*tls.Certificate, error) {
	ci, err1 := os.Stat(c.certFile)
	ki, err2 := os.Stat(c.keyFile)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err1 == nil && err2 == nil && c.cert != nil && ci.ModTime().Equal(c.modTime[0]) && ki.ModTime().Equal(c.modTime[1]) {
		return c.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(c.certFile, c.keyFile)
	if err != nil {
		if c.cert != nil {
			return c.cert, nil
		}
		return nil, fmt.Errorf("destination: TLS certificate: %w", err)
	}
	c.cert = &cert
	if err1 == nil && err2 == nil {
		c.modTime = [2]time.Time{ci.ModTime(), ki.ModTime()}
	}
	return c.cert, nil
}

// serverTLS is the API's TLS configuration for certificate files.
func serverTLS(certFile, keyFile string) (*tls.Config, error) {
	c, err := newCertFiles(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return c.get()
		},
	}, nil
}
