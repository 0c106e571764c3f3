package injector

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// InjectPodSpec adds the mesh to a pod or pod template in place: meshlet-init
// and meshlet-proxy (placement per cfg.Sidecar), their volumes, and the
// meshlet.io/proxy-version and meshlet.io/identity annotations. It doesn't
// call Decide: callers do. namespace may be "" when unknown (a manifest
// without one); the proxy learns it from the downward API and only the
// identity annotation is left out.
//
// A pod that is already injected is left unchanged (nil error), so
// injecting twice is the same as injecting once. Invalid config.meshlet.io
// annotations return an error wrapping ErrAnnotation and change nothing.
func InjectPodSpec(meta *metav1.ObjectMeta, spec *corev1.PodSpec, namespace string, cfg Config) error {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if Injected(meta, spec) {
		return nil
	}
	s, err := settingsFor(meta.Annotations, cfg)
	if err != nil {
		return err
	}
	initC, proxyC := initContainer(cfg, s), proxyContainer(cfg, s)
	switch cfg.Sidecar {
	case SidecarNative:
		// The proxy right after meshlet-init and before the pod's own init
		// containers, so they too can use the (captured) network.
		spec.InitContainers = append([]corev1.Container{initC, proxyC}, spec.InitContainers...)
	default:
		// The pod's init containers run after meshlet-init but before the
		// proxy exists: their outbound TCP fails unless its ports are in
		// skip-outbound-ports (docs/injection.md).
		spec.InitContainers = append([]corev1.Container{initC}, spec.InitContainers...)
		spec.Containers = append([]corev1.Container{proxyC}, spec.Containers...)
	}
	spec.Volumes = append(spec.Volumes, volumes(cfg)...)
	if meta.Annotations == nil {
		meta.Annotations = map[string]string{}
	}
	meta.Annotations[AnnotationProxyVersion] = s.version
	if namespace != "" {
		meta.Annotations[AnnotationIdentity] = IdentityFor(cfg.TrustDomain, namespace, serviceAccountOf(spec))
	}
	return nil
}

// Uninject removes everything InjectPodSpec adds (containers, volumes and
// annotations by their names) and reports whether anything was removed.
// The inject annotation itself is left alone: it is the user's.
func Uninject(meta *metav1.ObjectMeta, spec *corev1.PodSpec) bool {
	changed := false
	dropContainers := func(cs []corev1.Container) []corev1.Container {
		out := cs[:0]
		for _, c := range cs {
			if c.Name == ProxyContainerName || c.Name == InitContainerName {
				changed = true
				continue
			}
			out = append(out, c)
		}
		if len(out) == 0 {
			return nil
		}
		return out
	}
	spec.InitContainers = dropContainers(spec.InitContainers)
	spec.Containers = dropContainers(spec.Containers)
	vs := spec.Volumes[:0]
	for _, v := range spec.Volumes {
		if v.Name == TokenVolumeName || v.Name == XtablesVolumeName {
			changed = true
			continue
		}
		vs = append(vs, v)
	}
	spec.Volumes = vs
	if len(spec.Volumes) == 0 {
		spec.Volumes = nil
	}
	for _, k := range []string{AnnotationProxyVersion, AnnotationIdentity} {
		if _, ok := meta.Annotations[k]; ok {
			delete(meta.Annotations, k)
			changed = true
		}
	}
	if len(meta.Annotations) == 0 {
		meta.Annotations = nil
	}
	return changed
}
