package identity

import (
	"context"
	"crypto/x509"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshlet/meshlet/identity/api/identitypb"
)

// BenchmarkSign is the CPU cost of one certificate: CSR checks (signature
// verification included) and signing, without gRPC.
func BenchmarkSign(b *testing.B) {
	ca := newTestCA(b)
	is := ca.parse(b)
	id := mustID("spiffe://meshlet.test/ns/shop/sa/web")
	der := csrFor(b, p256Key(b), x509.CertificateRequest{}, id.String())
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		csr, err := ValidateCSR(der, id)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := is.Sign(csr, id, SignOptions{Lifetime: time.Hour}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}

// BenchmarkCertifyLoopback is whole Certify calls over loopback gRPC in
// local mode, from parallel clients sharing one connection.
func BenchmarkCertifyLoopback(b *testing.B) {
	const n = 64
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("spiffe://meshlet.test/ns/bench/sa/p%d", i)
	}
	toks := newTokens(b, ids...)
	s := startLocal(b, toks, time.Hour)
	reqs := make([]*identitypb.CertifyRequest, n)
	for i := range reqs {
		reqs[i] = &identitypb.CertifyRequest{Token: []byte(toks[i].Token), CsrDer: csrFor(b, p256Key(b), x509.CertificateRequest{}, ids[i]), Identity: ids[i]}
	}
	var next atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := reqs[next.Add(1)%n]
			if _, err := s.client.Certify(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "certs/s")
}
