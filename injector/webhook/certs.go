package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// CertReloader serves the certificate in CertFile/KeyFile and picks up a new
// one when the files change (a renewed Secret mounted as a volume), without
// a restart: GetCertificate reads the current pair on every handshake.
type CertReloader struct {
	certFile, keyFile string
	cur               atomic.Pointer[tls.Certificate]
	certPEM, keyPEM   []byte // last loaded, only touched by Reload's caller
	onError           func(error)
}

// NewCertReloader loads the pair once; a missing or bad pair is an error.
func NewCertReloader(certFile, keyFile string, onError func(error)) (*CertReloader, error) {
	r := &CertReloader{certFile: certFile, keyFile: keyFile, onError: onError}
	if _, err := r.Reload(); err != nil {
		return nil, err
	}
	return r, nil
}

// Reload reads the files and swaps in the pair if it changed and is valid.
// It reports whether a new pair was installed. A bad pair leaves the
// current one in place.
func (r *CertReloader) Reload() (bool, error) {
	certPEM, err := os.ReadFile(r.certFile)
	if err != nil {
		return false, fmt.Errorf("webhook: read certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(r.keyFile)
	if err != nil {
		return false, fmt.Errorf("webhook: read key: %w", err)
	}
	if bytes.Equal(certPEM, r.certPEM) && bytes.Equal(keyPEM, r.keyPEM) {
		return false, nil
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// A writer may have replaced one file but not yet the other; the
		// next poll sees both.
		return false, fmt.Errorf("webhook: certificate %s / key %s: %w", r.certFile, r.keyFile, err)
	}
	r.certPEM, r.keyPEM = certPEM, keyPEM
	r.cur.Store(&pair)
	return true, nil
}

// GetCertificate is for tls.Config.GetCertificate.
func (r *CertReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	c := r.cur.Load()
	if c == nil {
		return nil, errors.New("webhook: no certificate loaded")
	}
	return c, nil
}

// Watch polls the files every interval until ctx ends. Polling (rather than
// inotify) also sees Kubernetes' atomic symlink swap of Secret volumes.
func (r *CertReloader) Watch(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.Reload()
		if err != nil {
			log.Warn("certificate reload failed; keeping the current one", "err", err)
			if r.onError != nil {
				r.onError(err)
			}
			continue
		}
		if changed {
			log.Info("serving a new certificate", "cert", r.certFile)
		}
	}
}
