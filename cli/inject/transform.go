// Package inject applies a change to every pod template in a stream of
// Kubernetes YAML while leaving everything else as it was: the engine of
// `meshctl inject` and `meshctl uninject`.
//
// The change itself is a PodFunc working on typed objects (the injector's
// logic, or setting an annotation). The engine finds each workload's pod
// template in the YAML, hands it over as a corev1.Pod, and writes back only
// what the PodFunc changed, onto the original YAML nodes: comments, key
// order and untouched fields survive. Documents without a change are
// copied byte for byte.
package inject

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// PodFunc changes pod in place: a Pod, or a workload's pod template
// wrapped as one (its Namespace is the workload's). When it leaves the pod
// alone on purpose it returns the reason as skip and must not change it.
type PodFunc func(pod *corev1.Pod) (skip string, err error)

// Transformer rewrites YAML streams with one PodFunc.
type Transformer struct {
	// Pod is applied to every pod template. Required.
	Pod PodFunc
	// Verb names the change in reports, e.g. "injected". Required.
	Verb string
	// Metrics counts documents by result; nil counts nothing.
	Metrics *Metrics
}

// Report is what happened to one object (a workload, a skipped object, or
// an item of a List).
type Report struct {
	Kind, Name, Namespace string
	// Result: the Verb, "unchanged", or "skipped: <reason>".
	Result string
}

// String is the line meshctl prints on stderr, e.g. "deployment/web injected".
func (r Report) String() string {
	return strings.ToLower(r.Kind) + "/" + r.Name + " " + r.Result
}

// Transform rewrites one input (a file or stdin) named source. On any
// error it returns no output at all: the caller must not write half a
// stream to something like `kubectl apply`.
func (t *Transformer) Transform(source string, in []byte) (out []byte, reports []Report, err error) {
	// The yaml library has a history of panics on hostile input; bad input
	// must come back as an error, never crash meshctl.
	defer func() {
		if r := recover(); r != nil {
			out, reports = nil, nil
			err = &Error{Source: source, Doc: 0, Line: 0, Err: fmt.Errorf("yaml: internal error: %v", r)}
			t.Metrics.count("invalid")
		}
	}()
	var buf bytes.Buffer
	doc := 0
	for _, c := range split(in) {
		if !blank(c.raw) {
			doc++
		}
		o, reps, err := t.document(source, doc, c)
		if err != nil {
			t.Metrics.count("invalid")
			return nil, nil, err
		}
		buf.Write(o)
		reports = append(reports, reps...)
	}
	// Belt and braces: whatever we write must read back as YAML.
	if err := validStream(buf.Bytes()); err != nil {
		t.Metrics.count("invalid")
		return nil, nil, &Error{Source: source, Doc: doc, Err: fmt.Errorf("output does not parse, refusing to write it: %w", err)}
	}
	return buf.Bytes(), reports, nil
}

// document handles one chunk and returns its output bytes.
func (t *Transformer) document(source string, doc int, c chunk) ([]byte, []Report, error) {
	node, err := c.parse()
	if err != nil {
		line, shifted := shiftLines(err, c.line)
		if line == 0 {
			line = c.line
		}
		return nil, nil, &Error{Source: source, Doc: doc, Line: line, Err: shifted}
	}
	if node == nil {
		return c.raw, nil, nil
	}
	w := walker{t: t, source: source, doc: doc, base: c.line}
	changed, err := w.object(node.Content[0], "", "")
	if err != nil {
		return nil, nil, err
	}
	if !changed {
		return c.raw, w.reports, nil
	}
	if out, ok := splice(c, node, &w.m); ok {
		return out, w.reports, nil
	}
	enc, err := encode(node)
	if err != nil {
		return nil, nil, &Error{Source: source, Doc: doc, Line: c.line, Err: err}
	}
	marker := "---"
	if strings.HasPrefix(c.marker, "--- #") || c.marker == "" {
		marker = c.marker
	}
	var b bytes.Buffer
	if marker != "" {
		b.WriteString(marker + "\n")
	}
	b.Write(enc)
	return b.Bytes(), w.reports, nil
}

// walker carries the position of the document being walked, for errors.
type walker struct {
	t       *Transformer
	m       merger // what the merges did, for splice
	source  string
	doc     int
	base    int
	reports []Report
}

func (w *walker) errAt(n *yaml.Node, object string, err error) error {
	line := w.base
	if n != nil && n.Line > 0 {
		line = w.base + n.Line - 1
	}
	return &Error{Source: w.source, Doc: w.doc, Line: line, Object: object, Err: err}
}

// object handles one Kubernetes object (or List) and reports whether it
// changed. defKind/defVersion come from a typed List whose items may omit
// them.
func (w *walker) object(n *yaml.Node, defKind, defVersion string) (bool, error) {
	if n.Kind != yaml.MappingNode {
		return false, w.errAt(n, "", fmt.Errorf("not a Kubernetes object: a YAML %s, want a mapping", kindName(n.Kind)))
	}
	apiNode, kindNode := get(n, "apiVersion"), get(n, "kind")
	apiVersion, kind := scalar(apiNode, defVersion), scalar(kindNode, defKind)
	if kind == "" {
		return false, w.errAt(n, "", errors.New("not a Kubernetes object: no kind"))
	}
	if apiVersion == "" {
		return false, w.errAt(n, "", fmt.Errorf("not a Kubernetes object: %s has no apiVersion", kind))
	}
	name, ns := objectName(n)
	object := strings.ToLower(kind) + "/" + name
	if isList(kind) {
		items := get(n, "items")
		if items == nil || (items.Kind == yaml.ScalarNode && items.Tag == "!!null") {
			return false, nil
		}
		if items.Kind != yaml.SequenceNode {
			return false, w.errAt(items, object, errors.New("items is not a list"))
		}
		itemKind, itemVersion := "", ""
		if kind != "List" {
			itemKind, itemVersion = strings.TrimSuffix(kind, "List"), apiVersion
		}
		changed := false
		for _, it := range items.Content {
			c, err := w.object(it, itemKind, itemVersion)
			if err != nil {
				return false, err
			}
			changed = changed || c
		}
		return changed, nil
	}
	info, ok := workloads[kind]
	if !ok {
		w.report(kind, name, ns, "skipped: not a workload")
		w.t.Metrics.count("passthrough")
		return false, nil
	}
	if !info.knows(apiVersion) {
		at := apiNode
		if at == nil {
			at = n
		}
		return false, w.errAt(at, object, fmt.Errorf("unknown apiVersion %q for kind %s (known: %s)",
			apiVersion, kind, strings.Join(info.versions, ", ")))
	}
	tmpl := n
	for _, k := range info.path {
		next := get(tmpl, k)
		if next == nil || next.Kind != yaml.MappingNode {
			return false, w.errAt(tmpl, object, fmt.Errorf("%s has no %s mapping", kind, strings.Join(info.path, ".")))
		}
		tmpl = next
	}
	return w.pod(tmpl, kind, name, ns, object)
}

// pod runs the PodFunc on one pod template node and merges the result
// back into the node.
func (w *walker) pod(tmpl *yaml.Node, kind, name, ns, object string) (bool, error) {
	view := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for _, k := range []string{"metadata", "spec"} {
		if v := get(tmpl, k); v != nil {
			view.Content = append(view.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k}, v)
		}
	}
	var generic any
	if err := view.Decode(&generic); err != nil {
		_, shifted := shiftLines(err, w.base)
		return false, w.errAt(tmpl, object, fmt.Errorf("pod template: %w", shifted))
	}
	raw, err := json.Marshal(generic)
	if err != nil {
		return false, w.errAt(tmpl, object, fmt.Errorf("pod template: %w", err))
	}
	var pt corev1.PodTemplateSpec
	if err := json.Unmarshal(raw, &pt); err != nil {
		return false, w.errAt(tmpl, object, fmt.Errorf("pod template: %w", err))
	}
	pod := &corev1.Pod{ObjectMeta: pt.ObjectMeta, Spec: pt.Spec}
	pod.Namespace = ns
	if pod.Name == "" {
		pod.Name = name
	}
	before, err := toNode(pod)
	if err != nil {
		return false, w.errAt(tmpl, object, err)
	}
	skip, err := w.t.Pod(pod)
	if err != nil {
		return false, w.errAt(tmpl, object, err)
	}
	if skip != "" {
		w.report(kind, name, ns, "skipped: "+skip)
		w.t.Metrics.count("skipped")
		return false, nil
	}
	pod.Namespace = ns
	if pod.Name == "" {
		pod.Name = name
	}
	after, err := toNode(pod)
	if err != nil {
		return false, w.errAt(tmpl, object, err)
	}
	if equal(before, after) {
		w.report(kind, name, ns, "unchanged")
		w.t.Metrics.count("unchanged")
		return false, nil
	}
	w.m.merge(tmpl, before, after)
	w.report(kind, name, ns, w.t.Verb)
	w.t.Metrics.count("changed")
	return true, nil
}

func (w *walker) report(kind, name, ns, result string) {
	w.reports = append(w.reports, Report{Kind: kind, Name: name, Namespace: ns, Result: result})
}

// toNode renders the parts of pod a pod template has, through JSON, as a
// YAML node: the shape both sides of the merge are compared in.
func toNode(pod *corev1.Pod) (*yaml.Node, error) {
	raw, err := json.Marshal(corev1.PodTemplateSpec{ObjectMeta: pod.ObjectMeta, Spec: pod.Spec})
	if err != nil {
		return nil, fmt.Errorf("pod template: %w", err)
	}
	var n yaml.Node
	if err := yaml.Unmarshal(raw, &n); err != nil {
		return nil, fmt.Errorf("pod template: %w", err)
	}
	return n.Content[0], nil
}

func objectName(n *yaml.Node) (name, ns string) {
	md := get(n, "metadata")
	if md == nil || md.Kind != yaml.MappingNode {
		return "<unnamed>", ""
	}
	name = scalar(get(md, "name"), "")
	if name == "" {
		if g := scalar(get(md, "generateName"), ""); g != "" {
			name = g + "*"
		} else {
			name = "<unnamed>"
		}
	}
	return name, scalar(get(md, "namespace"), "")
}

// blank reports whether b holds only comments, blank lines and markers.
func blank(b []byte) bool {
	for _, l := range bytes.Split(b, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 || l[0] == '#' || isMarker(l, "---") || isMarker(l, "...") {
			continue
		}
		return false
	}
	return true
}

func kindName(k yaml.Kind) string {
	switch k {
	case yaml.SequenceNode:
		return "list"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	case yaml.MappingNode:
		return "mapping"
	}
	return "node"
}
