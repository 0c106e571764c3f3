package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"

	"github.com/meshlet/meshlet/injector"
)

// staticNamespaces is a NamespaceSource over a map (the real informer is
// tested against a kube-apiserver in kube_test.go).
type staticNamespaces map[string]map[string]string

func (s staticNamespaces) NamespaceAnnotations(_ context.Context, name string) (map[string]string, error) {
	a, ok := s[name]
	if !ok {
		return nil, errors.New("not found")
	}
	return a, nil
}

func testMesh() injector.Config {
	c := injector.Config{ProxyImage: "ghcr.io/meshlet/proxy", ProxyVersion: "v0.1.0", TrustAnchorsPEM: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"}
	return c.WithDefaults()
}

func newTestHandler() *Handler {
	return &Handler{
		Mesh: testMesh(),
		Namespaces: staticNamespaces{
			"meshed":   {injector.AnnotationInject: injector.InjectEnabled},
			"plain":    {},
			"disabled": {injector.AnnotationInject: injector.InjectDisabled},
		},
		Metrics: NewMetrics(prometheus.NewRegistry()),
		Log:     slog.New(slog.DiscardHandler),
	}
}

func reviewJSON(t testing.TB, apiVersion, namespace string, op admissionv1.Operation, resource metav1.GroupVersionResource, obj any) []byte {
	t.Helper()
	raw, err := json.Marshal(obj)
	if err != nil {
		t.Fatal(err)
	}
	r := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: apiVersion, Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       types.UID("uid-" + namespace),
			Kind:      metav1.GroupVersionKind{Version: "v1", Kind: "Pod"},
			Resource:  resource,
			Namespace: namespace,
			Operation: op,
			Object:    runtime.RawExtension{Raw: raw},
		},
	}
	b, _ := json.Marshal(r)
	return b
}

func pod(ann map[string]string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{GenerateName: "web-", Annotations: ann},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx"}}},
	}
}

func post(h http.Handler, body []byte) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/inject", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerReviews(t *testing.T) {
	cases := []struct {
		name       string
		apiVersion string
		namespace  string
		op         admissionv1.Operation
		resource   metav1.GroupVersionResource
		pod        *corev1.Pod
		wantPatch  bool
		wantDenied string
		metric     func(m *Metrics) prometheus.Counter
	}{
		{"namespace enabled", "admission.k8s.io/v1", "meshed", admissionv1.Create, podResource, pod(nil), true, "",
			func(m *Metrics) prometheus.Counter { return m.Injected.WithLabelValues("namespace-enabled") }},
		{"v1beta1 answered as v1beta1", "admission.k8s.io/v1beta1", "meshed", admissionv1.Create, podResource, pod(nil), true, "",
			func(m *Metrics) prometheus.Counter { return m.Injected.WithLabelValues("namespace-enabled") }},
		{"plain namespace", "admission.k8s.io/v1", "plain", admissionv1.Create, podResource, pod(nil), false, "",
			func(m *Metrics) prometheus.Counter { return m.Skipped.WithLabelValues("not-enabled") }},
		{"pod enabled in plain namespace", "admission.k8s.io/v1", "plain", admissionv1.Create, podResource,
			pod(map[string]string{injector.AnnotationInject: "enabled"}), true, "",
			func(m *Metrics) prometheus.Counter { return m.Injected.WithLabelValues("pod-enabled") }},
		{"pod disabled in meshed namespace", "admission.k8s.io/v1", "meshed", admissionv1.Create, podResource,
			pod(map[string]string{injector.AnnotationInject: "disabled"}), false, "",
			func(m *Metrics) prometheus.Counter { return m.Skipped.WithLabelValues("pod-disabled") }},
		{"kube-system", "admission.k8s.io/v1", "kube-system", admissionv1.Create, podResource,
			pod(map[string]string{injector.AnnotationInject: "enabled"}), false, "",
			func(m *Metrics) prometheus.Counter { return m.Skipped.WithLabelValues("kube-system") }},
		{"update is not mutated", "admission.k8s.io/v1", "meshed", admissionv1.Update, podResource, pod(nil), false, "",
			func(m *Metrics) prometheus.Counter { return m.Skipped.WithLabelValues(skipNotCreate) }},
		{"not a pod", "admission.k8s.io/v1", "meshed", admissionv1.Create, metav1.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}, pod(nil), false, "",
			func(m *Metrics) prometheus.Counter { return m.Skipped.WithLabelValues(skipNotPod) }},
		{"unknown namespace decides from the pod", "admission.k8s.io/v1", "ghost", admissionv1.Create, podResource,
			pod(map[string]string{injector.AnnotationInject: "enabled"}), true, "",
			func(m *Metrics) prometheus.Counter { return m.Errors.WithLabelValues(errNamespace) }},
		{"invalid override is denied", "admission.k8s.io/v1", "meshed", admissionv1.Create, podResource,
			pod(map[string]string{injector.AnnotationProxyCPURequest: "lots"}), false, "config.meshlet.io/proxy-cpu-request=\"lots\"",
			func(m *Metrics) prometheus.Counter { return m.Errors.WithLabelValues(errAnnotation) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler()
			rec := post(h, reviewJSON(t, tc.apiVersion, tc.namespace, tc.op, tc.resource, tc.pod))
			if rec.Code != http.StatusOK {
				t.Fatalf("status %d: %s", rec.Code, rec.Body)
			}
			var out admissionv1.AdmissionReview
			if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil {
				t.Fatal(err)
			}
			if out.APIVersion != tc.apiVersion || out.Kind != "AdmissionReview" {
				t.Errorf("answered as %s %s, want %s", out.APIVersion, out.Kind, tc.apiVersion)
			}
			if out.Response == nil || out.Response.UID != types.UID("uid-"+tc.namespace) {
				t.Fatalf("response %+v does not echo the request UID", out.Response)
			}
			r := out.Response
			if tc.wantDenied != "" {
				if r.Allowed || r.Result == nil || !strings.Contains(r.Result.Message, tc.wantDenied) {
					t.Errorf("want denied naming %q, got allowed=%v result=%+v", tc.wantDenied, r.Allowed, r.Result)
				}
			} else if !r.Allowed {
				t.Errorf("pod denied: %+v", r.Result)
			}
			if got := r.Patch != nil; got != tc.wantPatch {
				t.Fatalf("patch present = %v, want %v", got, tc.wantPatch)
			}
			if tc.wantPatch {
				if r.PatchType == nil || *r.PatchType != admissionv1.PatchTypeJSONPatch {
					t.Errorf("patchType %v", r.PatchType)
				}
				p, err := jsonpatch.DecodePatch(r.Patch)
				if err != nil {
					t.Fatal(err)
				}
				raw, _ := json.Marshal(tc.pod)
				patched, err := p.Apply(raw)
				if err != nil {
					t.Fatalf("patch does not apply: %v", err)
				}
				var got corev1.Pod
				_ = json.Unmarshal(patched, &got)
				if !injector.Injected(&got.ObjectMeta, &got.Spec) || got.Spec.InitContainers[1].Name != injector.ProxyContainerName {
					t.Errorf("patched pod is not injected: %+v", got.Spec)
				}
			}
			if n := counterValue(tc.metric(h.Metrics)); n != 1 {
				t.Errorf("metric for this case = %v, want 1", n)
			}
		})
	}
}

func TestHandlerRejectsBadRequests(t *testing.T) {
	valid := reviewJSON(t, "admission.k8s.io/v1", "meshed", admissionv1.Create, podResource, pod(nil))
	cases := []struct {
		name   string
		method string
		body   []byte
		code   int
		want   string
		reason string
	}{
		{"GET", http.MethodGet, nil, 405, "POST an AdmissionReview", errMethod},
		{"not JSON", http.MethodPost, []byte("hello"), 400, "malformed AdmissionReview", errMalformed},
		{"empty", http.MethodPost, nil, 400, "malformed AdmissionReview", errMalformed},
		{"wrong kind", http.MethodPost, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"Pod","request":{"uid":"x"}}`), 400, `kind is "Pod"`, errMalformed},
		{"wrong apiVersion", http.MethodPost, []byte(`{"apiVersion":"v1","kind":"AdmissionReview","request":{"uid":"x"}}`), 400, `apiVersion "v1"`, errMalformed},
		{"no request", http.MethodPost, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview"}`), 400, "no request", errMalformed},
		{"no uid", http.MethodPost, []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{}}`), 400, "no uid", errMalformed},
		{"trailing data", http.MethodPost, append(append([]byte{}, valid...), []byte(`{}`)...), 400, "data after", errMalformed},
		{"too large", http.MethodPost, bytes.Repeat([]byte(" "), MaxReviewBytes+1), 413, "larger than", errTooLarge},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newTestHandler()
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(tc.method, "/inject", bytes.NewReader(tc.body)))
			if rec.Code != tc.code || !strings.Contains(rec.Body.String(), tc.want) {
				t.Errorf("got %d %q, want %d containing %q", rec.Code, rec.Body, tc.code, tc.want)
			}
			if n := counterValue(h.Metrics.Errors.WithLabelValues(tc.reason)); n != 1 {
				t.Errorf("errors{reason=%s} = %v, want 1", tc.reason, n)
			}
		})
	}
}

func TestHandlerUndecodablePodIsAllowed(t *testing.T) {
	h := newTestHandler()
	body := []byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u1","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","namespace":"meshed","object":{"spec":{"containers":"nope"}}}}`)
	rec := post(h, body)
	var out admissionv1.AdmissionReview
	if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || rec.Code != 200 {
		t.Fatalf("%d %s %v", rec.Code, rec.Body, err)
	}
	if !out.Response.Allowed || out.Response.Patch != nil || len(out.Response.Warnings) == 0 {
		t.Errorf("response %+v, want allowed without patch, with a warning", out.Response)
	}
	if n := counterValue(h.Metrics.Errors.WithLabelValues(errDecodePod)); n != 1 {
		t.Errorf("errors{decode-pod} = %v", n)
	}
}

// FuzzAdmissionReview feeds arbitrary bodies to the handler: it must never
// panic or answer 5xx, and a 200 must be a well-formed review echoing the
// request's UID.
func FuzzAdmissionReview(f *testing.F) {
	f.Add(reviewJSON(f, "admission.k8s.io/v1", "meshed", admissionv1.Create, podResource, pod(nil)))
	f.Add(reviewJSON(f, "admission.k8s.io/v1", "plain", admissionv1.Create, podResource, pod(map[string]string{injector.AnnotationInject: "enabled", injector.AnnotationSkipInboundPorts: "1-5"})))
	f.Add(reviewJSON(f, "admission.k8s.io/v1beta1", "meshed", admissionv1.Update, podResource, pod(nil)))
	f.Add([]byte(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","resource":{"version":"v1","resource":"pods"},"operation":"CREATE","namespace":"meshed","object":{"metadata":{"annotations":{"a/b":"c"}},"spec":{"initContainers":[],"volumes":null}}}}`))
	f.Add([]byte(`{}`))
	f.Add([]byte(`null`))
	h := newTestHandler()
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := post(h, body)
		if rec.Code >= 500 {
			t.Fatalf("status %d for %q: %s", rec.Code, body, rec.Body)
		}
		if rec.Code != http.StatusOK {
			return
		}
		var in, out admissionv1.AdmissionReview
		_ = json.Unmarshal(body, &in)
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response == nil {
			t.Fatalf("200 with a bad review %s: %v", rec.Body, err)
		}
		if in.Request != nil && out.Response.UID != in.Request.UID {
			t.Fatalf("UID %q not echoed (%q)", in.Request.UID, out.Response.UID)
		}
		if out.Response.Patch != nil {
			if _, err := jsonpatch.DecodePatch(out.Response.Patch); err != nil {
				t.Fatalf("undecodable patch %s: %v", out.Response.Patch, err)
			}
			// The patch must apply to the object it was made for.
			if _, err := mustPatch(in.Request.Object.Raw, out.Response.Patch); err != nil {
				t.Fatalf("patch does not apply to its pod: %v\npod: %s\npatch: %s", err, in.Request.Object.Raw, out.Response.Patch)
			}
		}
	})
}

func mustPatch(doc, patch []byte) ([]byte, error) {
	p, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		return nil, err
	}
	return p.Apply(doc)
}

// counterValue reads a counter (client_golang's testutil needs a module
// this repository doesn't pin).
func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	return m.GetCounter().GetValue()
}
