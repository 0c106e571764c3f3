package meshctl

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/deploy"
	"github.com/meshlet/meshlet/injector"
	"github.com/meshlet/meshlet/internal/pemutil"
)

// proxyChecks: every meshed pod's proxy presents a certificate that chains
// to the trust anchors and names the pod's identity. A pod meshctl cannot
// reach (not running, or meshctl outside the pod network) only warns.
func (r *checkRun) proxyChecks(ctx context.Context) {
	r.section("data-plane")
	var anchors []*x509.Certificate
	var pods []corev1.Pod
	if !r.check(ctx, "can list meshed pods", func(ctx context.Context) (string, error) {
		cm, err := r.client.CoreV1().ConfigMaps(r.g.namespace).Get(ctx, deploy.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		if anchors, err = pemutil.Certificates([]byte(cm.Data[deploy.TrustAnchorsKey])); err != nil {
			return "", fmt.Errorf("trust anchors: %w", err)
		}
		list, err := r.client.CoreV1().Pods(r.o.proxyNS).List(ctx, metav1.ListOptions{})
		if err != nil {
			return "", err
		}
		for _, p := range list.Items {
			if _, ok := p.Annotations[injector.AnnotationProxyVersion]; ok {
				pods = append(pods, p)
			}
		}
		return fmt.Sprintf("%d meshed", len(pods)), nil
	}) {
		return
	}
	r.check(ctx, "meshed pods run the control plane's proxy version", func(ctx context.Context) (string, error) {
		cm, err := r.client.CoreV1().ConfigMaps(r.g.namespace).Get(ctx, deploy.ConfigMapName, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		cfg, err := injectorConfig(cm.Data)
		if err != nil {
			return "", err
		}
		var old []string
		for _, p := range pods {
			if v := p.Annotations[injector.AnnotationProxyVersion]; v != cfg.ProxyVersion {
				old = append(old, p.Namespace+"/"+p.Name+" ("+v+")")
			}
		}
		if len(old) > 0 {
			return "", warning{fmt.Sprintf("%d pod(s) run another proxy version than %s; restart them to upgrade: %s",
				len(old), cfg.ProxyVersion, strings.Join(old, ", "))}
		}
		return cfg.ProxyVersion, nil
	})
	for _, p := range pods {
		p := p
		r.check(ctx, "pod "+p.Namespace+"/"+p.Name+" proxy certificate chains to the trust anchors", func(ctx context.Context) (string, error) {
			return r.proxyCert(ctx, &p, anchors)
		})
	}
}

func (r *checkRun) proxyCert(ctx context.Context, p *corev1.Pod, anchors []*x509.Certificate) (string, error) {
	if p.Status.PodIP == "" || p.Status.Phase != corev1.PodRunning {
		return "", warning{"not running, not checked"}
	}
	var chain []*x509.Certificate
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS13,
		// The server's certificate is verified below against the trust
		// anchors, as a SPIFFE certificate (no DNS name to match).
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			for _, der := range raw {
				c, err := x509.ParseCertificate(der)
				if err != nil {
					return err
				}
				chain = append(chain, c)
			}
			return nil
		},
	}
	d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: r.o.dialTimeout}, Config: cfg}
	addr := net.JoinHostPort(p.Status.PodIP, strconv.Itoa(r.o.proxyPort))
	conn, err := d.DialContext(ctx, "tcp", addr)
	if conn != nil {
		conn.Close()
	}
	if len(chain) == 0 {
		if err == nil {
			err = errors.New("no certificate presented")
		}
		return "", warning{fmt.Sprintf("%s not reachable from here: %v", addr, err)}
	}
	// The handshake may fail after the server's certificate arrived (the
	// proxy wants a client certificate meshctl does not have); the
	// certificate is what is checked.
	if err := verifyChain(chain[0], chain[1:], anchors, "", r.o.now()); err != nil {
		return "", err
	}
	if want := p.Annotations[injector.AnnotationIdentity]; want != "" {
		for _, u := range chain[0].URIs {
			if u.String() == want {
				return want, nil
			}
		}
		return "", fmt.Errorf("certificate does not name the pod's identity %s", want)
	}
	return "", nil
}
