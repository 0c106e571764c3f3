package meshctl

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	admissionv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/meshlet/meshlet/internal/pemutil"
)

func TestInstallGolden(t *testing.T) {
	tests := []struct{ name, args string }{
		{"install.yaml", "install --tag v0.0.0-test " + pkiFlags},
		{"install-ha.yaml", "install --ha --tag v0.0.0-test --registry registry.example/mesh --trust-domain example.org --proxy-log-level debug " + pkiFlags},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := meshctl(t, "", tt.args)
			if r.code != 0 {
				t.Fatalf("exit %d: %s", r.code, r.stderr)
			}
			golden(t, tt.name, r.stdout)
		})
	}
}

// decodeAll reads every document of a manifest stream strictly into
// client-go's typed objects: an unknown or misspelt field fails.
func decodeAll(t *testing.T, manifests string) []runtime.Object {
	t.Helper()
	strict := json.NewSerializerWithOptions(json.DefaultMetaFactory, scheme.Scheme, scheme.Scheme,
		json.SerializerOptions{Yaml: true, Strict: true})
	var objs []runtime.Object
	dec := yaml.NewDecoder(strings.NewReader(manifests))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if errors.Is(err, io.EOF) {
			return objs
		}
		if err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		if err := yaml.NewEncoder(&b).Encode(&n); err != nil {
			t.Fatal(err)
		}
		obj, _, err := strict.Decode(b.Bytes(), nil, nil)
		if err != nil {
			t.Fatalf("strict decode: %v\n%s", err, b.String())
		}
		objs = append(objs, obj)
	}
}

func TestInstallObjects(t *testing.T) {
	for _, ha := range []bool{false, true} {
		args := "install " + pkiFlags
		if ha {
			args += " --ha"
		}
		r := meshctl(t, "", args)
		if r.code != 0 {
			t.Fatalf("exit %d: %s", r.code, r.stderr)
		}
		objs := decodeAll(t, r.stdout)
		kinds := map[string]int{}
		for _, o := range objs {
			kinds[o.GetObjectKind().GroupVersionKind().Kind]++
			switch o := o.(type) {
			case *appsv1.Deployment:
				want := int32(1)
				if ha {
					want = 3
				}
				if *o.Spec.Replicas != want {
					t.Errorf("ha=%v: %s has %d replicas", ha, o.Name, *o.Spec.Replicas)
				}
				if ha != (o.Spec.Template.Spec.Affinity != nil) {
					t.Errorf("ha=%v: %s affinity %v", ha, o.Name, o.Spec.Template.Spec.Affinity)
				}
				c := o.Spec.Template.Spec.Containers[0]
				if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.SecurityContext == nil || c.Resources.Requests == nil {
					t.Errorf("%s lacks probes, security context or resources", o.Name)
				}
				if o.Spec.Template.Annotations["meshlet.io/inject"] != "disabled" {
					t.Errorf("%s pods are not opted out of injection", o.Name)
				}
			case *admissionv1.MutatingWebhookConfiguration:
				w := o.Webhooks[0]
				if *w.FailurePolicy != admissionv1.Ignore || *w.SideEffects != admissionv1.SideEffectClassNone ||
					len(w.AdmissionReviewVersions) != 1 || *w.TimeoutSeconds != 10 || len(w.ClientConfig.CABundle) == 0 {
					t.Errorf("webhook %+v", w)
				}
			}
		}
		want := map[string]int{"Namespace": 1, "ServiceAccount": 3, "ClusterRole": 3, "ClusterRoleBinding": 3,
			"ConfigMap": 1, "Secret": 2, "Deployment": 3, "Service": 3, "MutatingWebhookConfiguration": 1}
		if ha {
			want["PodDisruptionBudget"] = 3
		}
		for k, n := range want {
			if kinds[k] != n {
				t.Errorf("ha=%v: %d %s, want %d (all: %v)", ha, kinds[k], k, n, kinds)
			}
		}
		if len(kinds) != len(want) {
			t.Errorf("ha=%v: kinds %v, want %v", ha, kinds, want)
		}
	}
}

func TestInstallGeneratesAValidPKI(t *testing.T) {
	keyOut := filepath.Join(t.TempDir(), "anchor.key")
	r := meshctl(t, "", "install --trust-domain example.org --identity-trust-anchor-key-out "+keyOut)
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	key, err := os.ReadFile(keyOut)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(keyOut); st.Mode().Perm() != 0o600 {
		t.Errorf("trust anchor key mode %v, want 0600", st.Mode().Perm())
	}
	// The anchor's key is nowhere in the manifests, in PEM or base64.
	if strings.Contains(r.stdout, strings.TrimSpace(string(key))) || strings.Contains(r.stdout, base64.StdEncoding.EncodeToString(key)) {
		t.Error("trust anchor key is in the manifests")
	}
	// Generated material chains: anchor -> issuer, webhook CA -> serving
	// cert for the Service name. Run a second install from the files.
	dir := t.TempDir()
	pki := extractPKI(t, r.stdout)
	for name, data := range pki {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	anchors, err := pemutil.Certificates([]byte(pki["anchors"]))
	if err != nil {
		t.Fatal(err)
	}
	if got := anchors[0].URIs[0].String(); got != "spiffe://example.org" {
		t.Errorf("anchor URI %s", got)
	}
	if left := time.Until(anchors[0].NotAfter); left < 9*365*24*time.Hour {
		t.Errorf("anchor valid for %v only", left)
	}
	// Rotation: a new issuer from the saved anchor key.
	r2 := meshctl(t, "", "install --identity-trust-anchors-file "+filepath.Join(dir, "anchors")+" --identity-trust-anchor-key-file "+keyOut)
	if r2.code != 0 {
		t.Fatalf("rotation install: exit %d: %s", r2.code, r2.stderr)
	}
	issuer, err := pemutil.Certificates([]byte(extractPKI(t, r2.stdout)["issuer.crt"]))
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyChain(issuer[0], nil, anchors, "", time.Now()); err != nil {
		t.Errorf("rotated issuer does not chain to the saved anchor: %v", err)
	}
}

// extractPKI pulls the key material back out of install output.
func extractPKI(t *testing.T, manifests string) map[string]string {
	t.Helper()
	out := map[string]string{}
	dec := yaml.NewDecoder(strings.NewReader(manifests))
	for {
		var o struct {
			Kind     string
			Metadata struct{ Name string }
			Data     map[string]string
		}
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		switch o.Metadata.Name {
		case "meshlet-config":
			out["anchors"] = o.Data["trustAnchorsPEM"]
		case "meshlet-identity-issuer":
			out["issuer.crt"], out["issuer.key"] = b64(t, o.Data["tls.crt"]), b64(t, o.Data["tls.key"])
		case "meshlet-injector-tls":
			out["webhook.crt"], out["webhook.key"], out["webhook-ca.crt"] = b64(t, o.Data["tls.crt"]), b64(t, o.Data["tls.key"]), b64(t, o.Data["ca.crt"])
		}
	}
}

func TestInstallBadFlags(t *testing.T) {
	tests := []struct{ name, args, want string }{
		{"issuer without anchors", "install --identity-issuer-certificate-file testdata/pki/issuer.crt --identity-issuer-key-file testdata/pki/issuer.key", "need --identity-trust-anchors-file"},
		{"issuer cert without key", "install --identity-trust-anchors-file testdata/pki/trust-anchor.crt --identity-issuer-certificate-file testdata/pki/issuer.crt", "give both"},
		{"key of another cert", "install --identity-trust-anchors-file testdata/pki/trust-anchor.crt --identity-issuer-certificate-file testdata/pki/issuer.crt --identity-issuer-key-file testdata/pki/webhook.key", "does not belong"},
		{"issuer not under anchors", "install --identity-trust-anchors-file testdata/pki/webhook-ca.crt --identity-issuer-certificate-file testdata/pki/issuer.crt --identity-issuer-key-file testdata/pki/issuer.key", "does not chain"},
		{"anchor not a CA", "install --identity-trust-anchors-file testdata/pki/webhook.crt --identity-issuer-certificate-file testdata/pki/issuer.crt --identity-issuer-key-file testdata/pki/issuer.key", "not a CA"},
		{"key as certificate", "install --identity-trust-anchors-file testdata/pki/issuer.key --identity-issuer-certificate-file testdata/pki/issuer.crt --identity-issuer-key-file testdata/pki/issuer.key", "want CERTIFICATE"},
		{"partial webhook", "install --webhook-ca-file testdata/pki/webhook-ca.crt", "all of --webhook-ca-file"},
		{"webhook for another namespace", "install --namespace other " + pkiFlags, "not valid for meshlet-injector.other.svc"},
		{"bad namespace", "install --namespace Not_A_Name", "namespace"},
		{"bad trust domain", "install --trust-domain UPPER..case", "trust domain"},
		{"bad quantity", "install --proxy-cpu-request lots", "proxy cpu request"},
		{"bad sidecar", "install --proxy-sidecar sometimes", "sidecar mode"},
		{"bad timeout", "install --webhook-timeout 31", "webhook timeout"},
		{"missing file", "install --identity-trust-anchors-file /nonexistent --identity-issuer-certificate-file a --identity-issuer-key-file b", "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := meshctl(t, "", tt.args)
			if r.code == 0 || r.stdout != "" {
				t.Fatalf("exit %d, stdout %d bytes; want failure and nothing printed", r.code, len(r.stdout))
			}
			if !strings.Contains(r.stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", r.stderr, tt.want)
			}
		})
	}
}

func TestUninstall(t *testing.T) {
	r := meshctl(t, "", "uninstall --namespace mesh-system")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	golden(t, "uninstall.yaml", r.stdout)
	objs := decodeAll(t, r.stdout)
	first, last := objs[0].GetObjectKind().GroupVersionKind().Kind, objs[len(objs)-1].GetObjectKind().GroupVersionKind().Kind
	if first != "MutatingWebhookConfiguration" || last != "Namespace" || len(objs) != 8 {
		t.Errorf("order: first %s, last %s, %d objects", first, last, len(objs))
	}
}

func b64(t *testing.T, s string) string {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestInstallWarnsAboutDevTag(t *testing.T) {
	r := meshctl(t, "", "install --tag dev "+pkiFlags)
	if r.code != 0 || !strings.Contains(r.stderr, `warning: images tagged "dev"`) {
		t.Errorf("no warning for the dev tag: %+v", r.stderr)
	}
	r = meshctl(t, "", "install --tag v1.2.3 "+pkiFlags)
	if r.stderr != "" {
		t.Errorf("stderr for a release tag: %q", r.stderr)
	}
}
