package identity

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// IssuerFiles name the PEM files the CA is read from (mounted from a
// Secret in Kubernetes).
type IssuerFiles struct {
	// AnchorsFile holds the trust anchor certificate(s).
	AnchorsFile string
	// CertFile holds the issuer certificate, optionally followed by the
	// intermediates between it and an anchor.
	CertFile string
	// KeyFile holds the issuer's private key (PKCS#8, SEC 1 or PKCS#1).
	KeyFile string
}

// IssuerWatcher keeps the current Issuer, re-reading the files when their
// content changes (cert-manager rotates the issuer Secret in place) and has
// stayed the same for two polls. A new
// issuer that fails validation is refused, logged and counted, and the old
// one stays in use.
type IssuerWatcher struct {
	files   IssuerFiles
	metrics *Metrics
	log     *slog.Logger
	cur     atomic.Pointer[Issuer]
	// settle gates new file content; only Run's goroutine (and
	// NewIssuerWatcher before it) touches it.
	settle settle
	// now is time.Now, replaceable by tests of expiry handling.
	now func() time.Time
}

// NewIssuerWatcher loads the files once and fails if they are not a valid
// issuer: the service must not start without one.
func NewIssuerWatcher(files IssuerFiles, m *Metrics, log *slog.Logger) (*IssuerWatcher, error) {
	w := &IssuerWatcher{files: files, metrics: m, log: log, now: time.Now}
	if _, err := w.reload(); err != nil {
		return nil, err
	}
	return w, nil
}

// Current returns the issuer in use; never nil after NewIssuerWatcher.
func (w *IssuerWatcher) Current() *Issuer { return w.cur.Load() }

// Run polls the files every interval until ctx ends.
func (w *IssuerWatcher) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if changed, err := w.reload(); err != nil {
				w.log.Error("identity: new issuer refused; keeping the previous one", "error", err)
			} else if changed {
				is := w.Current()
				w.log.Info("identity: issuer reloaded",
					"subject", is.cert.Subject.String(),
					"not_after", is.cert.NotAfter.UTC().Format(time.RFC3339))
			}
		}
	}
}

// reload reads the three files and swaps in the issuer they describe if
// their content changed. It reports whether a new issuer is in use.
func (w *IssuerWatcher) reload() (bool, error) {
	anchors, errA := os.ReadFile(w.files.AnchorsFile)
	cert, errC := os.ReadFile(w.files.CertFile)
	key, errK := os.ReadFile(w.files.KeyFile)
	if err := errors.Join(errA, errC, errK); err != nil {
		w.metrics.issuerReloads.WithLabelValues("error").Inc()
		return false, fmt.Errorf("identity: read issuer files: %w", err)
	}
	sum := sha256.Sum256(bytes.Join([][]byte{anchors, cert, key}, []byte{0}))
	if !w.settle.ready(sum, w.cur.Load() != nil) {
		return false, nil
	}
	is, err := ParseIssuer(anchors, cert, key, w.now())
	if err != nil {
		w.metrics.issuerReloads.WithLabelValues("error").Inc()
		return false, fmt.Errorf("%w (files %s, %s, %s)", err, w.files.AnchorsFile, w.files.CertFile, w.files.KeyFile)
	}
	w.cur.Store(is)
	w.metrics.issuerReloads.WithLabelValues("ok").Inc()
	w.metrics.issuerExpiry.Set(float64(is.cert.NotAfter.Unix()))
	return true, nil
}
