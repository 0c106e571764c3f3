//go:build linux

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
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
	svc := m.createService(t, ns, "web", map[string]string{"app": "web"})
	var eps []endpointState
	for _, p := range web {
		eps = append(eps, endpointState{pod: p})
	}
	m.setEndpoints(t, ns, "web", eps)
	vip := svc.Spec.ClusterIP
	name := "web." + ns + ".svc.cluster.local"

	t.Run("HTTP1ByClusterIP", func(t *testing.T) {
		seen := map[string]int{}
		for i := range 30 {
			body, pod := httpGet(t, client, "http://"+vip+":"+strconv.Itoa(httpPort)+"/", "")
			if !strings.Contains(body, "proto=HTTP/1.1") {
				t.Errorf("request %d: the app saw %q, want HTTP/1.1", i, body)
			}
			seen[pod]++
		}
		if len(seen) != 3 {
			t.Errorf("requests reached %v, want all 3 replicas", seen)
		}
	})
	t.Run("HTTP1ByName", func(t *testing.T) {
		host := name + ":" + strconv.Itoa(httpPort)
		body, _ := httpGet(t, client, "http://"+vip+":"+strconv.Itoa(httpPort)+"/", host)
		if !strings.Contains(body, "host="+host) {
			t.Errorf("the app saw %q, want host=%s", body, host)
		}
	})
}

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
