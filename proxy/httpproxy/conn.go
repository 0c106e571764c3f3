package httpproxy

import (
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// conn is the state of one served connection, shared by its requests.
type conn struct {
	p     *Proxy
	info  ConnInfo
	stack step

	origDst    string // info.OrigDst as ip:port, "" if invalid
	portSuffix string // ":<orig port>", the default port of outbound Hosts
	localAddr  string // inbound: the application's address

	lastRoute atomic.Pointer[route]    // route of the last request without an endpoint
	lastAuth  atomic.Pointer[hostAuth] // outbound: last Host and its authority

	// kill ends this connection's upgraded tunnels: when its drain expires
	// or the Proxy is closed.
	h1         *h1Conn // HTTP/1 connections: the raw connection, with its framing follower
	h1Requests int     // requests handled so far on h1, in the serving goroutine

	kill       context.Context
	killCancel context.CancelFunc
	tunnels    sync.WaitGroup
}

type hostAuth struct{ host, authority string }

func (p *Proxy) newConn(info ConnInfo) *conn {
	cn := &conn{p: p, info: info, stack: p.inbound}
	if info.Direction == Outbound {
		cn.stack = p.outbound
	}
	if info.OrigDst.IsValid() {
		cn.origDst = info.OrigDst.String()
		cn.portSuffix = ":" + strconv.Itoa(int(info.OrigDst.Port()))
	}
	cn.localAddr = p.cfg.InboundTarget
	if cn.localAddr == "" && info.OrigDst.IsValid() {
		cn.localAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(int(info.OrigDst.Port())))
	}
	cn.kill, cn.killCancel = context.WithCancel(p.closed)
	return cn
}

// ServeHTTP is the entry of every request: it normalises the head and runs
// the direction's stack.
func (cn *conn) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{parent: r.Context(), conn: cn, w: w, r: r}
	if cn.h1 != nil {
		i := cn.h1Requests
		cn.h1Requests++
		if cn.h1.fr.conflict(i) {
			// Both Content-Length and Transfer-Encoding: answered 400, and
			// the connection closed, since where this request ends is
			// exactly what is in doubt.
			cn.p.metrics.protocolError(cn.info.Direction, "http1", "content-length-and-transfer-encoding")
			c.closeConn = true
			c.rejected = errorf(reasonBadRequest, "request with both Content-Length and Transfer-Encoding")
			_ = cn.p.reject(c)
			return
		}
	}
	c.upgrade, c.teTrailers = stripHopByHop(r.Header)
	if cn.info.Direction == Outbound {
		delete(r.Header, hdrOrigProto) // only proxies may say this
	}
	if err := cn.stack(c); err != nil && c.wrote && !c.answered {
		// The response is under way: the only honest signal left is to
		// abort it (HTTP/2 RST_STREAM, HTTP/1 connection close), never a
		// clean end. net/http recovers this panic without logging.
		panic(http.ErrAbortHandler)
	}
}

// appUpstream is the transport that speaks the application's protocol in
// plaintext.
func (cn *conn) appUpstream() upstream {
	if cn.info.Protocol == HTTP2 {
		return upH2C
	}
	return upHTTP1
}

// authorityOf returns the authority of an outbound request's Host: with the
// original destination's port when Host has none, and the original
// destination itself when there is no Host (HTTP/1.0).
//
// Host names are case-insensitive: an authority is lower-cased (which
// allocates only for the rare Host with upper case), so that "Web" and
// "web" share one balancer and one metric series.
func (cn *conn) authorityOf(host string) string {
	if host == "" {
		return cn.origDst
	}
	if la := cn.lastAuth.Load(); la != nil && la.host == host {
		return la.authority
	}
	a := host
	if hasUpper(a) {
		a = strings.ToLower(a)
	}
	if i := strings.LastIndexByte(a, ':'); i <= strings.LastIndexByte(a, ']') {
		if cn.portSuffix != "" {
			a += cn.portSuffix
		} else {
			a += ":80"
		}
	}
	if a != host {
		cn.lastAuth.Store(&hostAuth{host, a})
	}
	return a
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			return true
		}
	}
	return false
}

// routeFor returns the metric handles of a request on this connection that
// has no endpoint (inbound requests, and outbound ones that failed before
// or bypassed balancing).
func (cn *conn) routeFor(authority string) *route {
	if r := cn.lastRoute.Load(); r != nil && r.key.authority == authority {
		return r
	}
	k := routeKey{dir: cn.info.Direction, authority: authority}
	if cn.info.Direction == Inbound {
		k.tls, k.client = cn.info.TLS, cn.info.PeerID
	}
	r := cn.p.metrics.route(k)
	cn.lastRoute.Store(r)
	return r
}
