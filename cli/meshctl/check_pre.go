package meshctl

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	authzv1 "k8s.io/api/authorization/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// minMinor is the oldest Kubernetes 1.x meshlet supports as is: native
// sidecars (init containers with restartPolicy Always) are on by default
// from 1.29.
const minMinor = 29

// apiChecks: can we talk to the cluster at all? The rest needs it.
func (r *checkRun) apiChecks(ctx context.Context) bool {
	r.section("kubernetes-api")
	ok := r.check(ctx, "can initialize the client", func(context.Context) (string, error) {
		cfg, err := r.g.restConfig()
		if err != nil {
			return "", err
		}
		c, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return "", err
		}
		r.client = c
		return cfg.Host, nil
	})
	if !ok {
		return false
	}
	var gitVersion, minor string
	if !r.check(ctx, "can query the Kubernetes API", func(context.Context) (string, error) {
		v, err := r.client.Discovery().ServerVersion()
		if err != nil {
			return "", err
		}
		gitVersion, minor = v.GitVersion, v.Minor
		return v.GitVersion, nil
	}) {
		return false
	}
	r.check(ctx, fmt.Sprintf("Kubernetes version is 1.%d or later", minMinor), func(context.Context) (string, error) {
		m, err := strconv.Atoi(strings.TrimRight(minor, "+"))
		if err != nil {
			return "", warning{fmt.Sprintf("cannot read the minor version %q of %s", minor, gitVersion)}
		}
		if m < minMinor {
			return "", warning{fmt.Sprintf("%s has no native sidecars: install with --proxy-sidecar container", gitVersion)}
		}
		return "", nil
	})
	return true
}

// installPermission is one kind of object install creates.
type installPermission struct {
	group, resource string
	namespaced      bool
}

var installPermissions = []installPermission{
	{"", "namespaces", false},
	{"rbac.authorization.k8s.io", "clusterroles", false},
	{"rbac.authorization.k8s.io", "clusterrolebindings", false},
	{"admissionregistration.k8s.io", "mutatingwebhookconfigurations", false},
	{"", "serviceaccounts", true},
	{"", "configmaps", true},
	{"", "secrets", true},
	{"", "services", true},
	{"apps", "deployments", true},
	{"policy", "poddisruptionbudgets", true},
}

func (r *checkRun) preChecks(ctx context.Context) {
	r.section("pre-install")
	ns := r.g.namespace
	r.check(ctx, fmt.Sprintf("control plane namespace %q does not already exist", ns), func(ctx context.Context) (string, error) {
		_, err := r.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return "", nil
		case err != nil:
			return "", err
		}
		return "", fmt.Errorf("namespace %s exists: meshlet may be installed already (run meshctl check)", ns)
	})
	for _, p := range installPermissions {
		p := p
		what := p.resource
		if p.group != "" {
			what += "." + p.group
		}
		r.check(ctx, "can create "+what, func(ctx context.Context) (string, error) {
			attr := &authzv1.ResourceAttributes{Verb: "create", Group: p.group, Resource: p.resource}
			if p.namespaced {
				attr.Namespace = ns
			}
			res, err := r.client.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx,
				&authzv1.SelfSubjectAccessReview{Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: attr}},
				metav1.CreateOptions{})
			if err != nil {
				return "", err
			}
			if !res.Status.Allowed {
				reason := res.Status.Reason
				if reason == "" {
					reason = "not allowed"
				}
				return "", fmt.Errorf("cannot create %s: %s", what, reason)
			}
			return "", nil
		})
	}
}
