//go:build linux

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// certLifetime of the SVIDs meshlet-identity issues in this run: short,
// so that proxies renew several times while the tests run.
const certLifetime = 30 * time.Second

func TestMesh(t *testing.T) {
	m := newMesh(t, certLifetime)
	ns := m.meshedNamespace(t, true)
	m.kube.ServiceAccount(t, ns, "web")
	m.kube.ServiceAccount(t, ns, "client")
	var web []*pod
	for i := range 3 {
		web = append(web, m.startPod(t, podOptions{namespace: ns, name: fmt.Sprintf("web-%d", i), sa: "web",
			labels: map[string]string{"app": "web"}, wantMeshed: true}))
	}
	client := m.startPod(t, podOptions{namespace: ns, name: "client", sa: "client", wantMeshed: true})
	ewma := ewmaPods(t, m, ns)
	scale := scalePods(t, m, ns)
	svc := m.createService(t, ns, "web", map[string]string{"app": "web"})
	var eps []endpointState
	for _, p := range web {
		eps = append(eps, endpointState{pod: p})
	}
	m.setEndpoints(t, ns, "web", eps)
	vip := svc.Spec.ClusterIP
	name := "web." + ns + ".svc.cluster.local"
	port := func(p int) string { return ":" + strconv.Itoa(p) }
	converge(t, "HTTP to the new service", func() error { return tryGet(client, "http://"+vip+port(httpPort)+"/", "") })
	converge(t, "HTTP to the new service by name", func() error { return tryGet(client, "http://"+vip+port(httpPort)+"/", name+port(httpPort)) })
	converge(t, "gRPC to the new service", func() error { return tryGRPC(client, vip+port(grpcPort), "") })
	converge(t, "gRPC to the new service by name", func() error { return tryGRPC(client, vip+port(grpcPort), name+port(grpcPort)) })
	converge(t, "opaque (server first) to the new service", func() error { _, err := tryBanner(client, vip+port(bannerPort)); return err })
	converge(t, "opaque (client first) to the new service", func() error { return tryEcho(client, vip+port(echoPort)) })

	t.Run("HTTP1ByClusterIP", func(t *testing.T) {
		seen := map[string]int{}
		for i := range 30 {
			body, pod := httpGet(t, client, "http://"+vip+":"+strconv.Itoa(httpPort)+"/", "")
			if !strings.Contains(body, "proto=HTTP/1.1") {
				t.Errorf("request %d: the app saw %q, want HTTP/1.1", i, body)
			}
			seen[pod]++
		}
		// Peak-EWMA may leave a replica that was slow to its first answer
		// (a new mTLS connection) aside for a while; two show balancing.
		if len(seen) < 2 {
			t.Errorf("requests reached %v, want them spread over the replicas", seen)
		}
	})
	t.Run("HTTP1ByName", func(t *testing.T) {
		host := name + ":" + strconv.Itoa(httpPort)
		body, _ := httpGet(t, client, "http://"+vip+":"+strconv.Itoa(httpPort)+"/", host)
		if !strings.Contains(body, "host="+host) {
			t.Errorf("the app saw %q, want host=%s", body, host)
		}
		// The name decides, not the address: sent to an address of the
		// service CIDR that no Service has, the request still reaches web.
		unused := "10.111.255.254"
		body, pod := httpGet(t, client, "http://"+unused+port(httpPort)+"/", host)
		if !strings.HasPrefix(pod, "web-") || !strings.Contains(body, "host="+host) {
			t.Errorf("sent to %s with Host %s: answered by %q: %q", unused, host, pod, body)
		}
	})
	t.Run("GRPC", func(t *testing.T) {
		for _, authority := range []string{"", name + ":" + strconv.Itoa(grpcPort)} {
			seen := grpcChecks(t, client, vip+":"+strconv.Itoa(grpcPort), authority, 30)
			if len(seen) < 2 {
				t.Errorf("authority %q: gRPC calls reached %v, want them spread over the replicas", authority, seen)
			}
		}
	})
	t.Run("OpaqueServerFirst", func(t *testing.T) {
		seen := map[string]int{}
		for range 12 {
			seen[bannerExchange(t, client, vip+":"+strconv.Itoa(bannerPort))]++
		}
		if len(seen) < 2 {
			t.Errorf("connections reached %v, want them spread over the replicas", seen)
		}
	})
	t.Run("OpaqueClientFirst", func(t *testing.T) {
		for range 5 {
			echoExchange(t, client, vip+":"+strconv.Itoa(echoPort), 64<<10)
		}
	})
	t.Run("MutualTLS", func(t *testing.T) {
		clientID := spiffeID(ns, "client")
		cm := client.scrape(t)
		for _, metric := range []string{"meshlet_response_total", "meshlet_tcp_open_total"} {
			if n := cm.sum(metric, map[string]string{"direction": "outbound", "tls": "true", "dst_namespace": ns, "dst_serviceaccount": "web"}); n == 0 {
				t.Errorf("the client's proxy reports no mTLS %s to %s/web:\n%s", metric, ns, cm.series(metric))
			}
			if n := cm.sum(metric, map[string]string{"direction": "outbound", "tls": "false"}); n != 0 {
				t.Errorf("the client's proxy reports %v plaintext outbound %s:\n%s", n, metric, cm.series(metric))
			}
		}
		for _, p := range web {
			wm := p.scrape(t)
			for _, metric := range []string{"meshlet_response_total", "meshlet_tcp_open_total"} {
				if n := wm.sum(metric, map[string]string{"direction": "inbound", "tls": "true", "client_id": clientID}); n == 0 {
					t.Errorf("%s's proxy reports no inbound mTLS %s from %s:\n%s", p.name, metric, clientID, wm.series(metric))
				}
			}
		}
		// The certificate each server proxy presents names its ServiceAccount
		// (asked from the node's namespace, where nothing is captured).
		node := nsDialer{path: m.net.path(m.net.node)}
		for _, p := range web {
			if got := peerSPIFFEID(t, node, p.ip+":"+strconv.Itoa(httpPort)); got != spiffeID(ns, "web") {
				t.Errorf("%s presents %q, want %s", p.name, got, spiffeID(ns, "web"))
			}
		}
	})

	t.Run("PermissiveUnmeshedClient", func(t *testing.T) {
		plainNS := m.meshedNamespace(t, false)
		outsider := m.startPod(t, podOptions{namespace: plainNS, name: "outsider", wantMeshed: false})
		target := web[0]
		before := target.scrape(t).sum("meshlet_response_total", map[string]string{"direction": "inbound", "tls": "false", "client_id": ""})
		for range 5 {
			_, got := httpGet(t, outsider, "http://"+target.ip+":"+strconv.Itoa(httpPort)+"/", "")
			if got != target.name {
				t.Errorf("answered by %q, want %s", got, target.name)
			}
		}
		if got := bannerExchange(t, outsider, target.ip+":"+strconv.Itoa(bannerPort)); got != target.name {
			t.Errorf("opaque answered by %q, want %s", got, target.name)
		}
		tm := target.scrape(t)
		if after := tm.sum("meshlet_response_total", map[string]string{"direction": "inbound", "tls": "false", "client_id": ""}); after-before < 5 {
			t.Errorf("%s reports %v new plaintext inbound responses, want 5:\n%s", target.name, after-before, tm.series("meshlet_response_total"))
		}
		if n := tm.sum("meshlet_tcp_open_total", map[string]string{"direction": "inbound", "tls": "false"}); n == 0 {
			t.Errorf("%s reports no plaintext inbound TCP:\n%s", target.name, tm.series("meshlet_tcp_open_total"))
		}
	})

	t.Run("PeakEWMA", func(t *testing.T) { testPeakEWMA(t, m, ns, client, ewma) })
	var scaleIP string
	t.Run("Scaling", func(t *testing.T) { scaleIP = testScaling(t, m, ns, client, scale) })
	t.Run("DestinationRestart", func(t *testing.T) {
		if scaleIP == "" {
			t.Skip("needs the Scaling service")
		}
		testDestinationRestart(t, m, ns, client, scaleIP, scale)
	})
	t.Run("CertificateRotation", func(t *testing.T) { testRotation(t, m, client, web, vip) })
	t.Run("CaptureRemove", func(t *testing.T) {
		// meshlet-init --remove leaves the pod's nat table as it found it;
		// then the app's connections to a ClusterIP reach nothing.
		_, initC := injected(client.obj)
		argv := append([]string{"ip", "netns", "exec", client.netns, filepath.Join(m.bin, "meshlet-proxy")}, initC.Command[1:]...)
		mustRun(t, append(append(argv, initC.Args...), "--remove")...)
		if rules := mustRun(t, "ip", "netns", "exec", client.netns, "iptables-save", "-t", "nat"); strings.Contains(rules, "MESHLET") {
			t.Errorf("after --remove, the pod's nat table still has meshlet rules:\n%s", rules)
		}
		if err := tryGet(client, "http://"+vip+port(httpPort)+"/", ""); err == nil {
			t.Errorf("without capture, a ClusterIP still answered: something other than the proxy routes it")
		}
	})
}

func spiffeID(ns, sa string) string { return "spiffe://" + trustDomain + "/ns/" + ns + "/sa/" + sa }

// httpGet makes one request from inside p (captured like its app's), with
// Host set when host is not empty, and returns the body and the answering
// pod (X-Pod).
func httpGet(t *testing.T, p *pod, url, host string) (string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := p.client.Do(req)
	if err != nil {
		t.Fatalf("e2e: GET %s (Host %q) from %s: %v", url, host, p.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("e2e: GET %s from %s: body: %v", url, p.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("e2e: GET %s (Host %q) from %s: %d %s", url, host, p.name, resp.StatusCode, b)
	}
	return string(b), resp.Header.Get("X-Pod")
}
