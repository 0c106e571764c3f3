package httpproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"testing"
)

// classify is the single mapping from errors to reasons; this table pins it.
func TestClassify(t *testing.T) {
	refused := &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", errors.New("connection refused"))}
	cases := []struct {
		name   string
		err    error
		client context.Context // the incoming request's context
		cause  error           // the call context's cancellation cause
		want   reason
	}{
		{"proxy error keeps its reason", errorf(reasonNoEndpoints, "x"), nil, nil, reasonNoEndpoints},
		{"wrapped proxy error", fmt.Errorf("ctx: %w", errorf(reasonBadRequest, "x")), nil, nil, reasonBadRequest},
		{"refused", &dialError{err: refused}, nil, nil, reasonConnect},
		{"dial deadline", &dialError{err: context.DeadlineExceeded}, nil, nil, reasonConnectTimeout},
		{"dial net timeout", &dialError{err: &net.OpError{Op: "dial", Err: timeoutErr{}}}, nil, nil, reasonConnectTimeout},
		{"handshake", &dialError{tls: true, err: errors.New("x509svid: unexpected ID")}, nil, nil, reasonTLS},
		{"handshake timeout", &dialError{tls: true, err: context.DeadlineExceeded}, nil, nil, reasonConnectTimeout},
		{"tls record", fmt.Errorf("read: %w", &tls.RecordHeaderError{Msg: "bad"}), nil, nil, reasonTLS},
		{"reset", io.ErrUnexpectedEOF, nil, nil, reasonUpstream},
		{"client gone", context.Canceled, cancelled(), nil, reasonClientGone},
		{"request timeout", context.Canceled, nil, errRequestTimeout, reasonRequestTimeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", "/", nil)
			if tc.client != nil {
				r = r.WithContext(tc.client)
			}
			c := &call{r: r, parent: r.Context()}
			if tc.cause != nil {
				ctx, cancel := context.WithCancelCause(context.Background())
				cancel(tc.cause)
				c.parent = ctx
			}
			if got := classify(c, tc.err); got != tc.want {
				t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	for r := reason(1); r < numReasons; r++ {
		if reasons[r].name == "" || reasons[r].status < 400 || reasons[r].grpcCode == "" {
			t.Errorf("reason %d has an incomplete table entry %+v", r, reasons[r])
		}
	}
	_ = http.StatusOK
}

type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func cancelled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

func TestAuthorityOf(t *testing.T) {
	cases := []struct {
		origDst    string
		host, want string
	}{
		{"10.0.0.1:8080", "web.default", "web.default:8080"},
		{"10.0.0.1:8080", "web.default:9000", "web.default:9000"},
		{"10.0.0.1:8080", "Web.DEFAULT", "web.default:8080"},
		{"10.0.0.1:8080", "Web.DEFAULT:81", "web.default:81"},
		{"10.0.0.1:8080", "[::1]", "[::1]:8080"},
		{"10.0.0.1:8080", "[::1]:81", "[::1]:81"},
		{"10.0.0.1:8080", "", "10.0.0.1:8080"},
		{"", "web.default", "web.default:80"},
	}
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, tc := range cases {
		var info ConnInfo
		if tc.origDst != "" {
			info.OrigDst = netip.MustParseAddrPort(tc.origDst)
		}
		cn := p.newConn(info)
		for range 2 { // the second time from the per-connection cache
			if got := cn.authorityOf(tc.host); got != tc.want {
				t.Errorf("authorityOf(%q) with original destination %q = %q, want %q", tc.host, tc.origDst, got, tc.want)
			}
		}
		cn.killCancel()
	}
}
