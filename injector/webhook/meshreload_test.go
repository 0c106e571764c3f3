package webhook

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admission/v1"
)

func TestMeshReload(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "injector.yaml")
	write := func(s string) {
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil {
			t.Fatal(err)
		}
	}
	const anchors = "trustAnchorsPEM: \"-----BEGIN CERTIFICATE-----\\nX\\n-----END CERTIFICATE-----\\n\"\n"
	write("proxyImage: first/proxy\nproxyVersion: v1\n" + anchors)
	cfg := Config{MeshConfigFile: file}
	h := newTestHandler()
	first, err := cfg.MeshConfig()
	if err != nil {
		t.Fatal(err)
	}
	h.SetMesh(first)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchMesh(ctx, h, cfg.MeshConfig, 20*time.Millisecond, h.Metrics, slog.New(slog.DiscardHandler))
	}()
	defer func() { cancel(); <-done }()

	image := func() string {
		var out admissionv1.AdmissionReview
		rec := post(h, reviewJSON(t, "admission.k8s.io/v1", "meshed", admissionv1.Create, podResource, pod(nil)))
		if err := json.Unmarshal(rec.Body.Bytes(), &out); err != nil || out.Response.Patch == nil {
			t.Fatalf("no patch: %s", rec.Body)
		}
		p := string(out.Response.Patch)
		i := strings.Index(p, `"image":"`)
		return p[i+9 : i+9+strings.Index(p[i+9:], `"`)]
	}
	waitImage := func(want string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for image() != want {
			if time.Now().After(deadline) {
				t.Fatalf("image %q, want %q after reload", image(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitImage("first/proxy:v1")
	write("proxyImage: second/proxy\nproxyVersion: v2\n" + anchors)
	waitImage("second/proxy:v2")

	write("proxyImage: third/proxy\nproxyCPURequest: lots\n" + anchors)
	deadline := time.Now().Add(5 * time.Second)
	for counterValue(h.Metrics.Errors.WithLabelValues(errConfigReload)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("invalid configuration not counted")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := image(); got != "second/proxy:v2" {
		t.Errorf("after an invalid configuration the image is %q, want the previous one", got)
	}
}
