package detect

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// clientHello returns the first TLS record crypto/tls sends for cfg.
func clientHello(tb testing.TB, cfg *tls.Config) []byte {
	tb.Helper()
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, cfg).Handshake() //nolint:errcheck // ends when the pipe closes
	head := make([]byte, 5)
	if _, err := io.ReadFull(b, head); err != nil {
		tb.Fatal(err)
	}
	body := make([]byte, int(head[3])<<8|int(head[4]))
	if _, err := io.ReadFull(b, body); err != nil {
		tb.Fatal(err)
	}
	return append(head, body...)
}

func TestServerName(t *testing.T) {
	withSNI := clientHello(t, &tls.Config{ServerName: "api.example.com", MinVersion: tls.VersionTLS12})
	noSNI := clientHello(t, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"meshlet.io/opaque"}})
	for _, tc := range []struct {
		name   string
		in     []byte
		want   string
		wantOK bool
	}{
		{"crypto/tls with SNI", withSNI, "api.example.com", true},
		{"crypto/tls without SNI", noSNI, "", true},
		{"truncated record", withSNI[:len(withSNI)-1], "", false},
		{"header only", withSNI[:5], "", false},
		{"not TLS", []byte("GET / HTTP/1.1\r\n"), "", false},
		{"server hello type", append([]byte{22, 3, 3, 0, 4}, 2, 0, 0, 0), "", false},
		{"handshake length beyond record", []byte{22, 3, 1, 0, 4, 1, 0, 0, 9}, "", false},
		{"minimal hello, no extensions", minimalHello(nil), "", true},
		{"sni extension", minimalHello(sniExt("db.internal")), "db.internal", true},
		{"sni list with bad length", minimalHello([]byte{0, 0, 0, 5, 0, 9, 0, 0, 1}), "", false},
		{"extension length beyond block", minimalHello([]byte{0, 0, 0, 9}), "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := ServerName(tc.in)
			if got != tc.want || ok != tc.wantOK {
				t.Errorf("ServerName = %q, %v; want %q, %v", got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

// minimalHello builds a ClientHello record by hand with the given
// extensions block content (nil: no extensions field at all).
func minimalHello(exts []byte) []byte {
	body := []byte{3, 3}
	body = append(body, make([]byte, 32)...) // random
	body = append(body, 0)                   // session id
	body = append(body, 0, 2, 0x13, 0x01)    // one cipher suite
	body = append(body, 1, 0)                // compression: null
	if exts != nil {
		body = append(body, byte(len(exts)>>8), byte(len(exts)))
		body = append(body, exts...)
	}
	hs := append([]byte{1, byte(len(body) >> 16), byte(len(body) >> 8), byte(len(body))}, body...)
	return append([]byte{22, 3, 1, byte(len(hs) >> 8), byte(len(hs))}, hs...)
}

func sniExt(host string) []byte {
	entry := append([]byte{0, byte(len(host) >> 8), byte(len(host))}, host...)
	list := append([]byte{byte(len(entry) >> 8), byte(len(entry))}, entry...)
	return append([]byte{0, 0, byte(len(list) >> 8), byte(len(list))}, list...)
}

func TestDetectReadsWholeClientHello(t *testing.T) {
	hello := clientHello(t, &tls.Config{ServerName: "shop.example.org"})
	c, s := pair(t)
	go func() {
		// Split inside the record: Detect must wait for the rest.
		c.Write(hello[:7])
		time.Sleep(20 * time.Millisecond)
		c.Write(hello[7:])
	}()
	dc, res, err := Detect(s, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if res.Protocol != TLS || !res.HelloParsed || res.ServerName != "shop.example.org" || res.TimedOut {
		t.Fatalf("Detect = %+v", res)
	}
	got := make([]byte, len(hello))
	if _, err := io.ReadFull(dc, got); err != nil || !bytes.Equal(got, hello) {
		t.Fatalf("replayed hello differs: %v", err)
	}
}

func FuzzServerName(f *testing.F) {
	f.Add(minimalHello(sniExt("a.b")))
	f.Add(minimalHello(nil))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		name, ok := ServerName(b)
		if !ok && name != "" {
			t.Fatalf("not ok but name %q", name)
		}
		if name != "" && !strings.Contains(string(b), name) {
			t.Fatalf("name %q not in the input", name)
		}
	})
}

func BenchmarkServerName(b *testing.B) {
	hello := clientHello(b, &tls.Config{ServerName: "api.example.com"})
	b.ReportAllocs()
	for b.Loop() {
		ServerName(hello)
	}
}
