// Package injector decides whether a pod joins the mesh and adds what it
// needs: the meshlet-init container that programs traffic capture, the
// meshlet-proxy sidecar, the projected ServiceAccount token it proves its
// identity with, and the annotations that mark the pod.
//
// There is one code path. The admission webhook (injector/webhook) calls
// Decide and Patch; `meshctl inject --manual` calls Decide and InjectPodSpec
// on a workload's pod template; `meshctl uninject` calls Uninject.
//
//	d := injector.Decide(&pod.ObjectMeta, &pod.Spec, ns, nsAnnotations, cfg)
//	if d.Inject {
//		ops, err := injector.Patch(&pod, ns, cfg) // RFC 6902 JSON Patch
//	}
//
//	// A Deployment, StatefulSet, ... (the namespace may be ""):
//	err := injector.InjectPodSpec(&tmpl.ObjectMeta, &tmpl.Spec, ns, cfg)
//
// docs/injection.md describes what is added and why; docs/annotations.md
// lists the annotations.
package injector
