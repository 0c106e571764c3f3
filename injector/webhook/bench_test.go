package webhook

import (
	"net/http"
	"testing"

	admissionv1 "k8s.io/api/admission/v1"
)

// BenchmarkReview is one injected pod through the whole handler: decode the
// review, decide, build and encode the patch, encode the response.
func BenchmarkReview(b *testing.B) {
	h := newTestHandler()
	body := reviewJSON(b, "admission.k8s.io/v1", "meshed", admissionv1.Create, podResource, pod(nil))
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		if rec := post(h, body); rec.Code != http.StatusOK {
			b.Fatal(rec.Code)
		}
	}
}
