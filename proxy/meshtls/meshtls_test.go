package meshtls_test

import (
	"crypto/tls"
	"io"
	"net"
	"testing"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/meshlet/meshlet/proxy/meshtls"
	"github.com/meshlet/meshlet/proxy/meshtls/meshtlstest"
)

const (
	webID    = "spiffe://meshlet.local/ns/default/sa/web"
	clientID = "spiffe://meshlet.local/ns/default/sa/client"
)

// handshake runs a real TLS handshake over loopback and returns the client's
// view, the server's view, the client error and the server error.
func handshake(t *testing.T, client, server *tls.Config) (tls.ConnectionState, tls.ConnectionState, error, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		err error
		cs  tls.ConnectionState
	}
	done := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		tc := tls.Server(c, server)
		err = tc.Handshake()
		if err == nil {
			_, err = io.ReadFull(tc, make([]byte, 1)) // the client's byte proves the session works
		}
		done <- result{err, tc.ConnectionState()}
	}()
	c, err := tls.Dial("tcp", ln.Addr().String(), client)
	var ccs tls.ConnectionState
	if err == nil {
		ccs = c.ConnectionState()
		_, err = c.Write([]byte{1})
		c.Close()
	}
	r := <-done
	return ccs, r.cs, err, r.err
}

func TestMutualTLS(t *testing.T) {
	ca := meshtlstest.NewCA(t, "meshlet.local")
	server := ca.Source(t, webID)
	client := ca.Source(t, clientID)

	ccs, scs, cerr, serr := handshake(t,
		meshtls.ClientConfig(client, spiffeid.RequireFromString(webID), meshtls.ALPNHTTP2),
		meshtls.ServerConfig(server, meshtls.ALPNHTTP2, meshtls.ALPNOpaque))
	if cerr != nil || serr != nil {
		t.Fatalf("handshake: client %v, server %v", cerr, serr)
	}
	if ccs.Version != tls.VersionTLS13 || ccs.NegotiatedProtocol != meshtls.ALPNHTTP2 {
		t.Errorf("version %x, ALPN %q; want TLS 1.3 and h2", ccs.Version, ccs.NegotiatedProtocol)
	}
	if id, ok := meshtls.PeerID(scs); !ok || id.String() != clientID {
		t.Errorf("server sees peer %v (%v), want %s", id, ok, clientID)
	}
	if id, ok := meshtls.PeerID(ccs); !ok || id.String() != webID {
		t.Errorf("client sees peer %v (%v), want %s", id, ok, webID)
	}
}

func TestWrongIdentityRefused(t *testing.T) {
	ca := meshtlstest.NewCA(t, "meshlet.local")
	impostor := ca.Source(t, "spiffe://meshlet.local/ns/default/sa/other")
	client := ca.Source(t, clientID)
	_, _, cerr, _ := handshake(t,
		meshtls.ClientConfig(client, spiffeid.RequireFromString(webID)),
		meshtls.ServerConfig(impostor))
	if cerr == nil {
		t.Fatal("client accepted a server with the wrong SPIFFE ID")
	}
}

func TestForeignCARefused(t *testing.T) {
	ca := meshtlstest.NewCA(t, "meshlet.local")
	rogue := meshtlstest.NewCA(t, "meshlet.local")
	server := ca.Source(t, webID)
	intruder := rogue.Source(t, clientID) // right name, wrong CA
	_, _, _, serr := handshake(t,
		meshtls.ClientConfig(intruder, spiffeid.RequireFromString(webID)),
		meshtls.ServerConfig(server))
	if serr == nil {
		t.Fatal("server accepted a client certificate from a foreign CA")
	}
}

func TestRotationTakesEffectOnNextHandshake(t *testing.T) {
	ca := meshtlstest.NewCA(t, "meshlet.local")
	server := ca.Source(t, webID)
	client := ca.Source(t, clientID)
	cfgS := meshtls.ServerConfig(server)
	cfgC := meshtls.ClientConfig(client, spiffeid.RequireFromString(webID))
	next := ca.SVID(t, clientID, 0)
	client.SetSVID(next)
	_, scs, _, serr := handshake(t, cfgC, cfgS)
	if serr != nil {
		t.Fatal(serr)
	}
	if got := scs.PeerCertificates[0].SerialNumber; got.Cmp(next.Certificates[0].SerialNumber) != 0 {
		t.Errorf("server saw serial %v, want the rotated certificate's %v", got, next.Certificates[0].SerialNumber)
	}
}

func TestIsClientHello(t *testing.T) {
	for _, tc := range []struct {
		in   []byte
		want bool
	}{
		{[]byte{22, 3, 1, 0, 200, 1}, true},
		{[]byte{22, 3, 1, 0, 200, 2}, false},
		{[]byte("GET / HTTP/1.1\r\n"), false},
		{[]byte("PRI * HTTP/2.0"), false},
		{[]byte{22, 3}, false},
		{nil, false},
	} {
		if got := meshtls.IsClientHello(tc.in); got != tc.want {
			t.Errorf("IsClientHello(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestIsClientHelloOnRealHandshake(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	go tls.Client(a, &tls.Config{ServerName: "x", MinVersion: tls.VersionTLS13}).Handshake() //nolint:errcheck // ends when b closes
	head := make([]byte, 6)
	if _, err := io.ReadFull(b, head); err != nil {
		t.Fatal(err)
	}
	if !meshtls.IsClientHello(head) {
		t.Fatalf("crypto/tls's first bytes %v not recognised as a ClientHello", head)
	}
}
