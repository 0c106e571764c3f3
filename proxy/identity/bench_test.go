package identity

import (
	"crypto/tls"
	"net"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/meshtls"
)

// BenchmarkHandshakeTLS13 is one full mutual TLS 1.3 handshake between two
// proxies over loopback TCP, both presenting SVIDs issued by meshlet-identity
// and verifying the other's chain and SPIFFE ID (connect included).
func BenchmarkHandshakeTLS13(b *testing.B) {
	s := startIdentity(b, time.Hour, webID, dbID)
	web, db := startClient(b, s, webID), startClient(b, s, dbID)
	waitReady(b, web)
	waitReady(b, db)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer lis.Close()
	srvCfg := meshtls.ServerConfig(db, meshtls.ALPNHTTP2)
	go func() {
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			go func() {
				tc := tls.Server(c, srvCfg)
				_ = tc.Handshake()
				// Wait for the client's close so the handshake's last
				// flight (the client certificate) is fully read.
				var one [1]byte
				_, _ = tc.Read(one[:])
				tc.Close()
			}()
		}
	}()
	cliCfg := meshtls.ClientConfig(web, spiffeid.RequireFromString(dbID), meshtls.ALPNHTTP2)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		c, err := net.Dial("tcp", lis.Addr().String())
		if err != nil {
			b.Fatal(err)
		}
		tc := tls.Client(c, cliCfg)
		if err := tc.Handshake(); err != nil {
			b.Fatal(err)
		}
		if tc.ConnectionState().Version != tls.VersionTLS13 {
			b.Fatal("not TLS 1.3")
		}
		tc.Close()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
}

// BenchmarkGetX509SVID is what every handshake asks the Client for.
func BenchmarkGetX509SVID(b *testing.B) {
	s := startIdentity(b, time.Hour, webID)
	web := startClient(b, s, webID)
	waitReady(b, web)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := web.GetX509SVID(); err != nil {
			b.Fatal(err)
		}
	}
}
