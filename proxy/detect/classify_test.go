package detect

import (
	"bytes"
	"strings"
	"testing"
)

func TestClassify(t *testing.T) {
	clientHello := []byte{22, 3, 1, 0x02, 0x00, 1, 0, 1, 0xfc, 3, 3}
	for _, tc := range []struct {
		name string
		in   string
		want Protocol
		more bool
	}{
		{"empty", "", Opaque, true},
		{"get", "GET / HTTP/1.1\r\n", HTTP1, false},
		{"get with headers", "GET /x?y=1 HTTP/1.1\r\nHost: a\r\n\r\n", HTTP1, false},
		{"http/1.0", "HEAD /index.html HTTP/1.0\r\n", HTTP1, false},
		{"bare LF", "GET / HTTP/1.1\n", HTTP1, false},
		{"custom method", "PROPFIND /dav HTTP/1.1\r\n", HTTP1, false},
		{"connect", "CONNECT example.com:443 HTTP/1.1\r\n", HTTP1, false},
		{"options star", "OPTIONS * HTTP/1.1\r\n", HTTP1, false},
		{"absolute form", "GET http://web:80/ HTTP/1.1\r\n", HTTP1, false},
		{"method only", "GET", Opaque, true},
		{"method and space", "GET ", Opaque, true},
		{"target partial", "GET /ab", Opaque, true},
		{"version partial", "GET / HTTP/1", Opaque, true},
		{"version digit, no CR", "GET / HTTP/1.1", Opaque, true},
		{"CR without LF yet", "GET / HTTP/1.1\r", Opaque, true},
		{"CR then junk", "GET / HTTP/1.1\rX", Opaque, false},
		{"http/2.0 version", "GET / HTTP/2.0\r\n", Opaque, false},
		{"http/1.2", "GET / HTTP/1.2\r\n", Opaque, false},
		{"lowercase version", "GET / http/1.1\r\n", Opaque, false},
		{"two spaces", "GET  / HTTP/1.1\r\n", Opaque, false},
		{"leading space", " GET / HTTP/1.1\r\n", Opaque, false},
		{"method too long", strings.Repeat("A", maxMethod+1) + " / HTTP/1.1\r\n", Opaque, false},
		{"long method prefix", strings.Repeat("A", maxMethod+1), Opaque, false},
		{"control in target", "GET /\x01 HTTP/1.1\r\n", Opaque, false},
		{"tab in target", "GET /\t HTTP/1.1\r\n", Opaque, false},
		{"h2 preface", h2Preface, HTTP2, false},
		{"h2 preface and frame", h2Preface + "\x00\x00\x00\x04\x00\x00\x00\x00\x00", HTTP2, false},
		{"h2 preface partial", h2Preface[:10], Opaque, true},
		{"h2 preface P", "P", Opaque, true},
		{"PRI as HTTP/1 method", "PRI * HTTP/1.1\r\n", HTTP1, false},
		{"POST", "POST /submit HTTP/1.1\r\n", HTTP1, false},
		{"tls client hello", string(clientHello), TLS, false},
		{"tls partial", string(clientHello[:3]), Opaque, true},
		{"tls server hello", string([]byte{22, 3, 3, 0, 10, 2}), Opaque, false},
		{"tls bad major", string([]byte{22, 2, 0}), Opaque, false},
		{"tls bad minor", string([]byte{22, 3, 9}), Opaque, false},
		{"tls zero length", string([]byte{22, 3, 1, 0, 0, 1}), Opaque, false},
		{"tls oversize", string([]byte{22, 3, 1, 0xff, 0xff, 1}), Opaque, false},
		{"mysql greeting-like", "\x4a\x00\x00\x00\x0a8.0.36", Opaque, false},
		{"redis inline", "PING\r\n", Opaque, false},
		{"redis resp", "*1\r\n$4\r\nPING\r\n", Opaque, false},
		{"binary", "\x00\x01\x02\x03", Opaque, false},
		{"utf8 path", "GET /caf\xc3\xa9 HTTP/1.1\r\n", HTTP1, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, more := Classify([]byte(tc.in))
			if p != tc.want || more != tc.more {
				t.Errorf("Classify(%q) = %v, more=%v; want %v, more=%v", tc.in, p, more, tc.want, tc.more)
			}
		})
	}
}

// TestClassifyByteByByte feeds real protocol openings one byte at a time,
// as a slow client would, and checks the decision only comes at the end.
func TestClassifyByteByByte(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Protocol
	}{
		{"GET /healthz HTTP/1.1\r\n", HTTP1},
		{h2Preface, HTTP2},
		{"\x16\x03\x01\x00\xc8\x01", TLS},
	} {
		for i := 0; i < len(tc.in); i++ {
			if p, more := Classify([]byte(tc.in[:i])); !more {
				t.Fatalf("%q: decided %v after %d bytes, before the end", tc.in, p, i)
			}
		}
		if p, more := Classify([]byte(tc.in)); more || p != tc.want {
			t.Errorf("%q: got %v, more=%v; want %v", tc.in, p, more, tc.want)
		}
	}
}

func TestClassifyAllocs(t *testing.T) {
	in := []byte("GET /some/path?q=1 HTTP/1.1\r\nHost: web\r\n\r\n")
	if n := testing.AllocsPerRun(100, func() { Classify(in) }); n != 0 {
		t.Errorf("Classify allocates %v times per call, want 0", n)
	}
}

// FuzzDetect checks the classifier on arbitrary input: it never panics, an
// undecided answer is always Opaque, and a decision is final — appending
// bytes never changes it, so Detect may stop reading as soon as it decides.
func FuzzDetect(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\n", h2Preface, "\x16\x03\x01\x00\xc8\x01\x00", "PRI * HTTP/1.1\r\n",
		"POST /x HTTP/1.0\n", "\x00", "SSH-2.0-OpenSSH_9.6\r\n", "",
	} {
		f.Add([]byte(s), []byte("more"))
	}
	f.Fuzz(func(t *testing.T, b, extra []byte) {
		p, more := Classify(b)
		if more && p != Opaque {
			t.Fatalf("Classify(%q) undecided but %v", b, p)
		}
		if p == HTTP2 && !bytes.HasPrefix(b, []byte(h2Preface)) {
			t.Fatalf("Classify(%q) = HTTP2 without the preface", b)
		}
		if p == TLS && (len(b) < 6 || b[0] != 22 || b[5] != 1) {
			t.Fatalf("Classify(%q) = TLS without a ClientHello header", b)
		}
		if p == HTTP1 && !bytes.Contains(b, []byte(" HTTP/1.")) {
			t.Fatalf("Classify(%q) = HTTP1 without a version", b)
		}
		longer := append(append([]byte(nil), b...), extra...)
		q, more2 := Classify(longer)
		if !more && (q != p || more2) {
			t.Fatalf("Classify(%q) = %v (final) but Classify(%q) = %v, more=%v", b, p, longer, q, more2)
		}
		for i := range len(b) {
			// Every prefix of undecided or decided input is undecided or the same decision.
			if pp, m := Classify(b[:i]); !m && pp != p {
				t.Fatalf("prefix %q decided %v, whole %q is %v", b[:i], pp, b, p)
			}
		}
	})
}

func BenchmarkClassify(b *testing.B) {
	for _, bc := range []struct{ name, in string }{
		{"http1", "GET /api/v1/users?limit=10 HTTP/1.1\r\nHost: users:8080\r\n\r\n"},
		{"http2", h2Preface},
		{"tls", "\x16\x03\x01\x02\x00\x01\x00\x01\xfc"},
		{"opaque", "\x4a\x00\x00\x00\x0a8.0.36"},
	} {
		in := []byte(bc.in)
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Classify(in)
			}
		})
	}
}
