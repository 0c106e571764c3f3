package inject

import "go.yaml.in/yaml/v3"

// merger records, while it merges, what it did to nodes of the original
// document, so that splice can redo it as text. Insertions of new keys
// into existing block mappings can be spliced; anything else (a removal, a
// changed value, a changed list) sets other, and the document is then
// re-encoded instead.
type merger struct {
	inserts    []insertion
	seqInserts []seqInsertion
	removals   []removal
	other      bool
}

// seqInsertion is an element added to a list that exists in the input,
// placed before the input's element before (nil: at the end).
type seqInsertion struct {
	seq, item, before *yaml.Node
}

// removal is a key of an input mapping, or an element of an input list,
// that the PodFunc removed. next is the key or element after it in the
// input (nil: it was the last), first the container's first one.
type removal struct {
	container, node, next, first *yaml.Node
}

// remove records the removal of content[i] (a mapping key, whose value is
// content[i+1], or a list element) from container.
func (m *merger) remove(container *yaml.Node, i, step int) {
	content := container.Content
	if container.Line == 0 {
		return // inside a new node: nothing in the input to delete
	}
	if content[i].Line == 0 {
		m.other = true
		return
	}
	r := removal{container: container, node: content[i], first: content[0]}
	for j := i + step; j < len(content); j += step {
		if content[j].Line > 0 {
			r.next = content[j]
			break
		}
	}
	m.removals = append(m.removals, r)
}

// insertion is a key added to a mapping that exists in the input.
type insertion struct {
	mapping    *yaml.Node
	key, value *yaml.Node
}

// touch notes a change to n other than an insertion; changes inside new
// nodes (Line 0) are part of their insertion.
func (m *merger) touch(n *yaml.Node) {
	if n != nil && n.Line > 0 {
		m.other = true
	}
}

// mergeKey is merge for the value of key (which decides where new map
// entries go, see mergeMapping).
func (m *merger) mergeKey(key string, target, before, after *yaml.Node) *yaml.Node {
	if before != nil && equal(before, after) && target != nil {
		return target
	}
	switch {
	case after.Kind == yaml.MappingNode && target != nil && target.Kind == yaml.MappingNode:
		m.mergeMapping(key, target, before, after)
		return target
	case after.Kind == yaml.MappingNode && target == nil && before != nil && before.Kind == yaml.MappingNode:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		m.mergeMapping(key, n, before, after)
		return n
	case after.Kind == yaml.SequenceNode && target != nil && target.Kind == yaml.SequenceNode:
		return m.mergeSequence(target, before, after)
	}
	n := fresh(after)
	if target != nil {
		m.touch(target)
		n.HeadComment, n.LineComment, n.FootComment = target.HeadComment, target.LineComment, target.FootComment
	}
	return n
}

// stringMaps are the keys whose values are Go maps: their JSON keys come
// sorted, not in a meaningful order, so new entries go at the end.
var stringMaps = map[string]bool{"annotations": true, "labels": true, "matchLabels": true, "nodeSelector": true, "data": true}

func (m *merger) mergeMapping(parent string, target, before, after *yaml.Node) {
	if before != nil && before.Kind != yaml.MappingNode {
		before = nil
	}
	// Existing keys first, in the user's order.
	kept := target.Content[:0:0]
	for i := 0; i+1 < len(target.Content); i += 2 {
		k, v := target.Content[i], target.Content[i+1]
		a, b := get(after, k.Value), get(before, k.Value)
		switch {
		case a == nil && b != nil:
			m.remove(target, i, 2)
			continue // the PodFunc removed it
		case a == nil:
			// Unknown to the typed model: not ours to touch.
		case b != nil && equal(a, b):
			// Unchanged.
		default:
			v = m.mergeKey(k.Value, v, b, a)
		}
		kept = append(kept, k, v)
	}
	target.Content = kept
	// Then keys the PodFunc added, each placed before the next key (in the
	// model's order) that the user already has, so metadata stays ahead
	// of spec and a new "annotations" lands next to "labels".
	for i := 0; i+1 < len(after.Content); i += 2 {
		key, a := after.Content[i].Value, after.Content[i+1]
		if get(target, key) != nil {
			continue
		}
		b := get(before, key)
		if b != nil && equal(a, b) {
			continue // a round-trip artefact, not a change
		}
		v := m.mergeKey(key, nil, b, a)
		if v.Kind == yaml.MappingNode && len(v.Content) == 0 && a.Kind == yaml.MappingNode && len(a.Content) > 0 {
			continue // everything in it was an artefact
		}
		pos := len(target.Content)
		for j := i + 2; !stringMaps[parent] && j+1 < len(after.Content); j += 2 {
			if idx := index(target, after.Content[j].Value); idx >= 0 {
				pos = idx
				break
			}
		}
		k := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key}
		if target.Line > 0 {
			m.inserts = append(m.inserts, insertion{mapping: target, key: k, value: v})
		}
		target.Content = append(target.Content[:pos], append([]*yaml.Node{k, v}, target.Content[pos:]...)...)
	}
}

// mergeSequence matches elements by their "name" field when every element
// has a distinct one (containers, volumes, env, ports...), so a sidecar
// added in front does not look like every container changed. Other lists
// merge element by element when nothing was added or removed, and are
// replaced otherwise.
func (m *merger) mergeSequence(target, before, after *yaml.Node) *yaml.Node {
	if before != nil && before.Kind != yaml.SequenceNode {
		before = nil
	}
	tNames, tOK := names(target)
	aNames, aOK := names(after)
	bNames, bOK := names(before)
	if tOK && aOK && (before == nil || bOK) {
		out := make([]*yaml.Node, 0, len(after.Content))
		added := map[*yaml.Node]bool{}
		for _, a := range after.Content {
			name := scalar(get(a, "name"), "")
			if t, ok := tNames[name]; ok {
				out = append(out, m.merge(t, bNames[name], a))
			} else {
				n := fresh(a)
				added[n] = true
				out = append(out, n)
			}
		}
		var kept []*yaml.Node // the input's elements that stay, in input order
		for i, t := range target.Content {
			name := scalar(get(t, "name"), "")
			if _, ok := aNames[name]; ok {
				kept = append(kept, t)
				continue
			}
			if _, removed := bNames[name]; removed {
				m.remove(target, i, 1)
				continue
			}
			kept = append(kept, t)
			out = append(out, t)
		}
		var existing []*yaml.Node
		for _, n := range out {
			if !added[n] {
				existing = append(existing, n)
			}
		}
		for i := range existing {
			if i >= len(kept) || existing[i] != kept[i] {
				m.touch(target) // reordered
				break
			}
		}
		if target.Line > 0 {
			for i, n := range out {
				if !added[n] {
					continue
				}
				in := seqInsertion{seq: target, item: n}
				for _, later := range out[i+1:] {
					if !added[later] && later.Line > 0 {
						in.before = later
						break
					}
				}
				m.seqInserts = append(m.seqInserts, in)
			}
		}
		target.Content = out
		return target
	}
	if before != nil && len(target.Content) == len(before.Content) && len(before.Content) == len(after.Content) {
		for i := range target.Content {
			target.Content[i] = m.merge(target.Content[i], before.Content[i], after.Content[i])
		}
		return target
	}
	m.touch(target)
	n := fresh(after)
	n.HeadComment, n.LineComment, n.FootComment = target.HeadComment, target.LineComment, target.FootComment
	return n
}

// merge writes onto target the difference between before and after, and
// returns the node to use in target's place (target itself when it could
// be edited in place).
//
// before is target as the typed model sees it (a JSON round trip: unknown
// fields dropped, some empty ones added); after is the same once the
// PodFunc ran. Only where before and after differ is target touched, so
// fields the model does not know, comments, key order and quoting
// elsewhere all survive. This three-way form is what keeps a round-trip
// artefact such as "resources: {}" or "creationTimestamp: null" out of the
// user's YAML.
func (m *merger) merge(target, before, after *yaml.Node) *yaml.Node {
	return m.mergeKey("", target, before, after)
}

// names maps each element's "name" to the element, if every element is a
// mapping with a distinct scalar name.
func names(seq *yaml.Node) (map[string]*yaml.Node, bool) {
	if seq == nil {
		return nil, false
	}
	m := make(map[string]*yaml.Node, len(seq.Content))
	for _, e := range seq.Content {
		if e.Kind != yaml.MappingNode {
			return nil, false
		}
		name := scalar(get(e, "name"), "")
		if name == "" {
			return nil, false
		}
		if _, dup := m[name]; dup {
			return nil, false
		}
		m[name] = e
	}
	return m, true
}

// fresh copies a node that came from JSON and clears its JSON styles
// (flow collections, double quotes), so it reads like the rest of a
// hand-written manifest. The encoder re-adds quotes where a plain scalar
// would change type ("80", "true").
func fresh(n *yaml.Node) *yaml.Node {
	c := *n
	c.Style = 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" && n.Value == "" {
		c.Style = yaml.DoubleQuotedStyle
	}
	c.Line, c.Column = 0, 0
	c.Content = make([]*yaml.Node, 0, len(n.Content))
	for i := 0; i < len(n.Content); i++ {
		ch := n.Content[i]
		if n.Kind == yaml.MappingNode && i%2 == 0 && i+1 < len(n.Content) && artefact(ch.Value, n.Content[i+1]) {
			i++
			continue
		}
		c.Content = append(c.Content, fresh(ch))
	}
	return &c
}

// artefact reports whether key: v is noise of the JSON round trip in a
// newly added object: a null (creationTimestamp: null) or an empty
// resources mapping. Other empty mappings mean something (emptyDir: {}).
func artefact(key string, v *yaml.Node) bool {
	switch {
	case v.Kind == yaml.ScalarNode && v.ShortTag() == "!!null":
		return true
	case key == "resources" && v.Kind == yaml.MappingNode && len(v.Content) == 0:
		return true
	}
	return false
}

// equal compares two nodes by kind, resolved tag, value and children.
func equal(a, b *yaml.Node) bool {
	if a == nil || b == nil {
		return a == b
	}
	if a.Kind != b.Kind || a.ShortTag() != b.ShortTag() || a.Value != b.Value || len(a.Content) != len(b.Content) {
		return false
	}
	for i := range a.Content {
		if !equal(a.Content[i], b.Content[i]) {
			return false
		}
	}
	return true
}

// get returns the value of key in mapping m, or nil.
func get(m *yaml.Node, key string) *yaml.Node {
	if i := index(m, key); i >= 0 {
		return m.Content[i+1]
	}
	return nil
}

// index returns the position of key's key node in mapping m, or -1.
func index(m *yaml.Node, key string) int {
	if m == nil || m.Kind != yaml.MappingNode {
		return -1
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return i
		}
	}
	return -1
}

// scalar returns n's value if it is a non-null scalar, else def.
func scalar(n *yaml.Node, def string) string {
	if n == nil || n.Kind != yaml.ScalarNode || n.ShortTag() == "!!null" {
		return def
	}
	return n.Value
}
