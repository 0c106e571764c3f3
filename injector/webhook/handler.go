// Package webhook is meshlet-injector: the mutating admission webhook that
// injects the proxy into pods as the API server creates them, using the
// injector package's Decide and Patch.
package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/meshlet/meshlet/injector"
)

// MaxReviewBytes bounds an AdmissionReview body. The API server limits
// objects to about 1.5 MiB; a review carries the object (and for updates
// the old one), so 3 MiB fits any real request.
const MaxReviewBytes = 3 << 20

// Handler answers AdmissionReviews on /inject.
type Handler struct {
	// Mesh is the injection configuration (defaults applied, validated),
	// used until SetMesh installs another.
	Mesh injector.Config
	// mesh, when set, replaces Mesh: the configuration reloaded at run time.
	mesh atomic.Pointer[injector.Config]
	// Namespaces gives the annotations of the pod's namespace.
	Namespaces NamespaceSource
	Metrics    *Metrics
	Log        *slog.Logger
}

// SetMesh installs a new mesh configuration for the following requests
// (requests in flight finish with the one they started with).
func (h *Handler) SetMesh(c injector.Config) { h.mesh.Store(&c) }

func (h *Handler) meshConfig() injector.Config {
	if c := h.mesh.Load(); c != nil {
		return *c
	}
	return h.Mesh
}

// httpError is a request the webhook can't answer with an AdmissionReview.
type httpError struct {
	code   int
	reason string // errors_total label
	err    error
}

func (e *httpError) Error() string { return e.err.Error() }

// ServeHTTP decodes the review, answers it, and maps failures to a status
// code and an error metric in one place.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	defer func() {
		h.Metrics.Duration.Observe(time.Since(start).Seconds())
		if v := recover(); v != nil {
			h.Metrics.Errors.WithLabelValues(errPanic).Inc()
			h.Log.Error("panic answering admission request", "panic", v)
			http.Error(w, "injector: internal error", http.StatusInternalServerError)
		}
	}()
	out, err := h.serve(r)
	if err != nil {
		var he *httpError
		if !errors.As(err, &he) {
			he = &httpError{code: http.StatusInternalServerError, reason: "internal", err: err}
		}
		h.Metrics.Errors.WithLabelValues(he.reason).Inc()
		h.Log.Warn("bad admission request", "reason", he.reason, "err", he.err, "remote", r.RemoteAddr)
		http.Error(w, he.Error(), he.code)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(out)
}

func (h *Handler) serve(r *http.Request) ([]byte, error) {
	if r.Method != http.MethodPost {
		return nil, &httpError{http.StatusMethodNotAllowed, errMethod, fmt.Errorf("injector: method %s not allowed, POST an AdmissionReview", r.Method)}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, MaxReviewBytes+1))
	if err != nil {
		return nil, &httpError{http.StatusBadRequest, errMalformed, fmt.Errorf("injector: reading request body: %w", err)}
	}
	if len(body) > MaxReviewBytes {
		return nil, &httpError{http.StatusRequestEntityTooLarge, errTooLarge, fmt.Errorf("injector: AdmissionReview larger than %d bytes", MaxReviewBytes)}
	}
	review, err := DecodeReview(body)
	if err != nil {
		return nil, &httpError{http.StatusBadRequest, errMalformed, err}
	}
	resp := h.Review(r.Context(), review.Request)
	out := admissionv1.AdmissionReview{TypeMeta: review.TypeMeta, Response: resp}
	return json.Marshal(out)
}

// DecodeReview parses an AdmissionReview of admission.k8s.io/v1 (or
// v1beta1, whose JSON has the same shape) and checks that it carries a
// request. The error says what is wrong.
func DecodeReview(body []byte) (*admissionv1.AdmissionReview, error) {
	var review admissionv1.AdmissionReview
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&review); err != nil {
		return nil, fmt.Errorf("injector: malformed AdmissionReview: %w", err)
	}
	if dec.More() {
		return nil, errors.New("injector: malformed AdmissionReview: data after the JSON object")
	}
	if review.Kind != "AdmissionReview" {
		return nil, fmt.Errorf("injector: malformed AdmissionReview: kind is %q, want AdmissionReview", review.Kind)
	}
	switch review.APIVersion {
	case "admission.k8s.io/v1", "admission.k8s.io/v1beta1":
	default:
		return nil, fmt.Errorf("injector: malformed AdmissionReview: apiVersion %q is not admission.k8s.io/v1", review.APIVersion)
	}
	if review.Request == nil {
		return nil, errors.New("injector: malformed AdmissionReview: no request")
	}
	if review.Request.UID == "" {
		return nil, errors.New("injector: malformed AdmissionReview: request has no uid")
	}
	return &review, nil
}

var podResource = metav1.GroupVersionResource{Version: "v1", Resource: "pods"}

// Review answers one request. It always allows the pod, with a patch when
// the pod is injected, except when the pod asked for injection with an
// invalid config.meshlet.io annotation: that is denied with a message
// naming the annotation, so the mistake shows in `kubectl` and in the
// ReplicaSet's events instead of the pod silently running without mTLS.
func (h *Handler) Review(ctx context.Context, req *admissionv1.AdmissionRequest) *admissionv1.AdmissionResponse {
	resp := &admissionv1.AdmissionResponse{UID: req.UID, Allowed: true}
	if req.Resource != podResource || req.SubResource != "" {
		h.Metrics.Skipped.WithLabelValues(skipNotPod).Inc()
		return resp
	}
	if req.Operation != admissionv1.Create {
		h.Metrics.Skipped.WithLabelValues(skipNotCreate).Inc()
		return resp
	}
	var pod corev1.Pod
	if err := json.Unmarshal(req.Object.Raw, &pod); err != nil {
		h.Metrics.Errors.WithLabelValues(errDecodePod).Inc()
		h.Log.Warn("pod in admission request does not decode; allowed without injection", "namespace", req.Namespace, "err", err)
		resp.Warnings = []string{"meshlet injector: pod not decodable, not injected: " + err.Error()}
		return resp
	}
	namespace := req.Namespace
	if namespace == "" {
		namespace = pod.Namespace
	}
	nsAnn, err := h.Namespaces.NamespaceAnnotations(ctx, namespace)
	if err != nil {
		// Decide on the pod's own annotation alone.
		h.Metrics.Errors.WithLabelValues(errNamespace).Inc()
		h.Log.Warn("namespace lookup failed; deciding from the pod's annotations", "namespace", namespace, "err", err)
	}
	mesh := h.meshConfig()
	d := injector.Decide(&pod.ObjectMeta, &pod.Spec, namespace, nsAnn, mesh)
	if !d.Inject {
		h.Metrics.Skipped.WithLabelValues(string(d.Reason)).Inc()
		return resp
	}
	patch, err := patchFor(req.Object.Raw, &pod, namespace, mesh)
	switch {
	case errors.Is(err, injector.ErrAnnotation):
		h.Metrics.Errors.WithLabelValues(errAnnotation).Inc()
		h.Metrics.Skipped.WithLabelValues(skipAnnotationErr).Inc()
		resp.Allowed = false
		resp.Result = &metav1.Status{
			Status:  metav1.StatusFailure,
			Code:    http.StatusUnprocessableEntity,
			Reason:  metav1.StatusReasonInvalid,
			Message: err.Error(),
		}
		return resp
	case err != nil:
		h.Metrics.Errors.WithLabelValues(errConfig).Inc()
		h.Log.Error("injection failed; pod allowed without the proxy", "namespace", namespace, "err", err)
		resp.Warnings = []string{"meshlet injector: not injected: " + err.Error()}
		return resp
	}
	if patch != nil {
		pt := admissionv1.PatchTypeJSONPatch
		resp.Patch, resp.PatchType = patch, &pt
	}
	h.Metrics.Injected.WithLabelValues(string(d.Reason)).Inc()
	h.Log.Debug("injected", "namespace", namespace, "pod", podName(&pod), "reason", d.Reason)
	return resp
}

// patchFor is injector.Patch, made safe for objects whose JSON lacks (or has
// null) metadata or spec: "add" below a missing member fails (RFC 6902), so
// the parent is created first. The API server always sends both; this is
// for anything else that calls the webhook.
func patchFor(raw []byte, pod *corev1.Pod, namespace string, cfg injector.Config) ([]byte, error) {
	ops, err := injector.Patch(pod, namespace, cfg)
	if err != nil || len(ops) == 0 {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		return nil, fmt.Errorf("injector: pod object: %w", err)
	}
	var parents []injector.JSONPatchOp
	for _, member := range []string{"metadata", "spec"} {
		if v, ok := top[member]; !ok || string(bytes.TrimSpace(v)) == "null" {
			parents = append(parents, injector.JSONPatchOp{Op: "add", Path: "/" + member, Value: map[string]any{}})
		}
	}
	return json.Marshal(append(parents, ops...))
}

func podName(p *corev1.Pod) string {
	if p.Name != "" {
		return p.Name
	}
	return p.GenerateName + "*"
}
