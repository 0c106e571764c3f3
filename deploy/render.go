// Package deploy holds the control plane's Kubernetes manifests as
// text/template files embedded into meshctl, and renders them.
//
// The templates are plain YAML with a few {{ }} holes; read them under
// deploy/templates to see exactly what `meshctl install` applies. Rendering
// is deterministic: the same Values give the same bytes (golden tests rely
// on it, and so does `kubectl diff`).
package deploy

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"sort"
	"strings"
	"text/template"
)

//go:embed templates/*.yaml templates/_helpers.tpl
var files embed.FS

// Component names, used in object names (meshlet-<component>), labels and
// image names.
const (
	Destination = "destination"
	Identity    = "identity"
	Injector    = "injector"
)

// Components lists the control-plane Deployments in install order.
var Components = []string{Identity, Destination, Injector}

// Names of the objects other code (meshctl check, version, the injector)
// looks up.
const (
	// ConfigMapName holds the mesh config (see docs/install.md).
	ConfigMapName = "meshlet-config"
	// IssuerSecretName holds the issuer certificate and key (kubernetes.io/tls).
	IssuerSecretName = "meshlet-identity-issuer"
	// WebhookSecretName holds the injector's serving certificate (kubernetes.io/tls).
	WebhookSecretName = "meshlet-injector-tls"
	// WebhookConfigName is the MutatingWebhookConfiguration (cluster-scoped).
	WebhookConfigName = "meshlet-proxy-injector"
	// WebhookName is the webhook's name inside that configuration.
	WebhookName = "proxy-injector.meshlet.io"
	// TrustAnchorsKey is the mesh config key holding the trust anchors PEM.
	TrustAnchorsKey = "trustAnchorsPEM"
	// InjectorConfigKey is the mesh config key holding the injector's
	// Config as YAML.
	InjectorConfigKey = "injector.yaml"
	// ComponentLabel marks control-plane pods with their component.
	ComponentLabel = "meshlet.io/control-plane-component"
	// ControlPlaneNSLabel is on every control-plane object.
	ControlPlaneNSLabel = "meshlet.io/control-plane-ns"
	// WebhookOptOutLabel = disabled on a namespace or pod keeps the webhook
	// from being called for it at all.
	WebhookOptOutLabel = "meshlet.io/admission-webhooks"
)

// Render returns every control-plane manifest as one multi-document YAML
// stream, each document starting with "---". v is completed with
// WithDefaults and checked with Validate first.
func Render(v Values) ([]byte, error) {
	v = v.WithDefaults()
	if err := v.Validate(); err != nil {
		return nil, err
	}
	tmpl, err := parse()
	if err != nil {
		return nil, err
	}
	names, err := templateNames()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	for _, name := range names {
		var doc bytes.Buffer
		if err := tmpl.ExecuteTemplate(&doc, name, v); err != nil {
			return nil, fmt.Errorf("deploy: render %s: %w", name, err)
		}
		out.Write(bytes.TrimLeft(doc.Bytes(), "\n"))
	}
	return out.Bytes(), nil
}

// templateNames lists the manifest templates in the order they are
// applied: the file names' numeric prefixes set it (namespace first,
// webhook last, so the webhook never points at a missing Service).
func templateNames() ([]string, error) {
	entries, err := fs.Glob(files, "templates/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("deploy: list templates: %w", err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, strings.TrimPrefix(e, "templates/"))
	}
	sort.Strings(names)
	return names, nil
}

func parse() (*template.Template, error) {
	t := template.New("meshlet").Option("missingkey=error")
	// include renders a named helper into a string so it can be piped
	// through nindent; it needs t itself, hence the closure.
	include := func(name string, data any) (string, error) {
		var b bytes.Buffer
		err := t.ExecuteTemplate(&b, name, data)
		return b.String(), err
	}
	t, err := t.Funcs(funcs).Funcs(template.FuncMap{"include": include}).
		ParseFS(files, "templates/*.yaml", "templates/_helpers.tpl")
	if err != nil {
		return nil, fmt.Errorf("deploy: parse templates: %w", err)
	}
	return t, nil
}

// funcs are the template helpers; each returns text that is valid YAML in
// the position the templates use it.
var funcs = template.FuncMap{
	// b64 encodes Secret data.
	"b64": func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) },
	// quote gives a double-quoted YAML scalar (JSON strings are valid YAML).
	"quote": func(s string) string {
		b, _ := json.Marshal(s) // a string always marshals
		return string(b)
	},
	// indent prefixes every non-empty line with n spaces, for block scalars.
	"indent": indent,
	// nindent is indent after a newline, for nesting a helper's output.
	"nindent": func(n int, s string) string { return "\n" + indent(n, s) },
	// checksum of some inputs, put on pod templates so a changed issuer or
	// serving certificate rolls the pods that read it.
	"checksum": func(parts ...string) string {
		h := sha256.New()
		for _, p := range parts {
			h.Write([]byte(p))
			h.Write([]byte{0})
		}
		return hex.EncodeToString(h.Sum(nil))
	},
	// list makes a slice to range over.
	"list": func(s ...string) []string { return s },
	// comp pairs the Values with one component for the shared helpers.
	"comp": func(v Values, name string) Comp { return Comp{Values: v, Name: name} },
}

func indent(n int, s string) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = pad + l
		}
	}
	return strings.Join(lines, "\n")
}

// Comp is what the shared helper templates in _helpers.tpl receive.
type Comp struct {
	Values
	// Name is the component: destination, identity or injector.
	Name string
}
