package injector

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/meshlet/meshlet/proxy/capture"
)

// ErrAnnotation wraps every error caused by a pod's config.meshlet.io/*
// annotation; the message names the annotation and its value.
var ErrAnnotation = errors.New("injector: invalid annotation")

// podSettings is Config after the pod's annotations are applied.
type podSettings struct {
	image, version string
	logLevel       string
	resources      corev1.ResourceRequirements
	opaquePorts    capture.Ports
	skipIn         capture.Ports
	skipOut        capture.Ports
}

func annotationError(key, value, format string, args ...any) error {
	return fmt.Errorf("%w %s=%q: %s", ErrAnnotation, key, value, fmt.Sprintf(format, args...))
}

// settingsFor merges cfg (already defaulted) and the pod's annotations.
func settingsFor(ann map[string]string, cfg Config) (podSettings, error) {
	get := func(key, def string) string {
		if v, ok := ann[key]; ok {
			return strings.TrimSpace(v)
		}
		return def
	}
	s := podSettings{
		image:    get(AnnotationProxyImage, cfg.ProxyImage),
		version:  get(AnnotationProxyVersionConfig, cfg.ProxyVersion),
		logLevel: get(AnnotationProxyLogLevel, cfg.LogLevel),
	}
	if s.image == "" {
		return s, annotationError(AnnotationProxyImage, s.image, "the image must not be empty")
	}
	if strings.ContainsAny(s.image, " \t\n") {
		return s, annotationError(AnnotationProxyImage, s.image, "an image reference has no spaces")
	}
	if s.version == "" || strings.ContainsAny(s.version, " \t\n:@/") {
		return s, annotationError(AnnotationProxyVersionConfig, s.version, "not an image tag")
	}
	if !validLogLevel(s.logLevel) {
		return s, annotationError(AnnotationProxyLogLevel, s.logLevel, "must be one of debug, info, warn, error")
	}

	quantities := []struct {
		key, def string
		list     *corev1.ResourceList
		name     corev1.ResourceName
	}{
		{AnnotationProxyCPURequest, cfg.ProxyCPURequest, &s.resources.Requests, corev1.ResourceCPU},
		{AnnotationProxyCPULimit, cfg.ProxyCPULimit, &s.resources.Limits, corev1.ResourceCPU},
		{AnnotationProxyMemoryRequest, cfg.ProxyMemoryRequest, &s.resources.Requests, corev1.ResourceMemory},
		{AnnotationProxyMemoryLimit, cfg.ProxyMemoryLimit, &s.resources.Limits, corev1.ResourceMemory},
	}
	for _, q := range quantities {
		v := get(q.key, q.def)
		if v == "" {
			continue
		}
		qty, err := resource.ParseQuantity(v)
		if err != nil {
			return s, annotationError(q.key, v, "not a Kubernetes quantity (e.g. 100m, 64Mi)")
		}
		if qty.Sign() < 0 {
			return s, annotationError(q.key, v, "must not be negative")
		}
		if *q.list == nil {
			*q.list = corev1.ResourceList{}
		}
		(*q.list)[q.name] = qty
	}
	// The API server rejects a request above its limit; say which
	// annotation caused it instead.
	for _, r := range []struct {
		name        corev1.ResourceName
		reqKey, lim string
	}{
		{corev1.ResourceCPU, AnnotationProxyCPURequest, AnnotationProxyCPULimit},
		{corev1.ResourceMemory, AnnotationProxyMemoryRequest, AnnotationProxyMemoryLimit},
	} {
		req, hasReq := s.resources.Requests[r.name]
		lim, hasLim := s.resources.Limits[r.name]
		if hasReq && hasLim && req.Cmp(lim) > 0 {
			return s, fmt.Errorf("%w: proxy %s request %s (%s) is above its limit %s (%s)",
				ErrAnnotation, r.name, req.String(), r.reqKey, lim.String(), r.lim)
		}
	}

	var err error
	if s.opaquePorts, err = portsAnnotation(ann, AnnotationOpaquePorts, cfg.OpaquePorts, nil); err != nil {
		return s, err
	}
	meshIn, _ := capture.ParsePorts(cfg.SkipInboundPorts) // checked by Config.Validate
	if s.skipIn, err = portsAnnotation(ann, AnnotationSkipInboundPorts, "", meshIn); err != nil {
		return s, err
	}
	meshOut, _ := capture.ParsePorts(cfg.SkipOutboundPorts)
	if s.skipOut, err = portsAnnotation(ann, AnnotationSkipOutboundPorts, "", meshOut); err != nil {
		return s, err
	}
	return s, nil
}

// portsAnnotation parses a port-list annotation (or def when absent) and
// appends base, the mesh-wide list, which an annotation adds to but can't
// remove from.
func portsAnnotation(ann map[string]string, key, def string, base capture.Ports) (capture.Ports, error) {
	v, ok := ann[key]
	if !ok {
		v = def
	}
	p, err := capture.ParsePorts(v)
	if err != nil {
		return nil, annotationError(key, v, "%v", strings.TrimPrefix(err.Error(), "capture: "))
	}
	if len(base) == 0 {
		return p, nil
	}
	merged, err := capture.ParsePorts(append(append(capture.Ports{}, base...), p...).String())
	if err != nil {
		return nil, annotationError(key, v, "with the mesh-wide ports: %v", strings.TrimPrefix(err.Error(), "capture: "))
	}
	return merged, nil
}

// imageRef joins image and tag unless the image already names a tag or a
// digest.
func imageRef(image, tag string) string {
	if strings.Contains(image, "@") {
		return image
	}
	last := image[strings.LastIndex(image, "/")+1:]
	if strings.Contains(last, ":") {
		return image
	}
	return image + ":" + tag
}
