package extauthz

import (
	"bytes"
	"encoding/json"

	"github.com/vektah/gqlparser/v2/ast"
)

// The answer side of GraphQL filter mode: null at each removed field
// (planNode), GraphQL's null propagation for non-null fields, the errors
// added, gatehouse's own __typename removed.

// planNode is what to do at one level of the answer: the removed fields
// to set null, and the levels below by response key.
type planNode struct {
	nulls []planNull
	kids  map[string]*planKid
}

type planKid struct {
	typ  *ast.Type // the field's type: lists and non-null, for propagation
	node *planNode
}

// planNull is one removed field: its response key, whether its type is
// non-null (its parent then becomes null), and the object types it is
// removed on (nil: any; set when it was under a narrower type condition).
type planNull struct {
	key     string
	nonNull bool
	types   map[string]bool
}

func (n *planNode) kid(key string, t *ast.Type) *planNode {
	if n.kids == nil {
		n.kids = map[string]*planKid{}
	}
	k := n.kids[key]
	if k == nil {
		k = &planKid{typ: t, node: &planNode{}}
		n.kids[key] = k
	}
	return k.node
}

// applyObject sets the nulls of one object of the answer; true: the object
// itself must become null (a non-null field of it is null).
func (n *planNode) applyObject(obj map[string]any) bool {
	null := false
	for _, e := range n.nulls {
		if e.types != nil {
			t, _ := obj[injectedKey].(string)
			if !e.types[t] {
				continue
			}
		}
		obj[e.key] = nil
		null = null || e.nonNull
	}
	for key, k := range n.kids {
		v, ok := obj[key]
		if !ok || v == nil {
			continue
		}
		if k.node.applyValue(v, k.typ) {
			obj[key] = nil
			null = null || k.typ.NonNull
		}
	}
	return null
}

// applyValue applies the plan to a value of type t (through lists); true:
// the value must become null.
func (n *planNode) applyValue(v any, t *ast.Type) bool {
	if t.Elem != nil {
		arr, ok := v.([]any)
		if !ok {
			return false
		}
		null := false
		for i := range arr {
			if arr[i] != nil && n.applyValue(arr[i], t.Elem) {
				arr[i] = nil
				null = null || t.Elem.NonNull
			}
		}
		return null
	}
	obj, ok := v.(map[string]any)
	return ok && n.applyObject(obj)
}

// stripInjected removes gatehouse's own __typename everywhere in v.
func stripInjected(v any) {
	switch x := v.(type) {
	case map[string]any:
		delete(x, injectedKey)
		for _, c := range x {
			stripInjected(c)
		}
	case []any:
		for _, c := range x {
			stripInjected(c)
		}
	}
}

// gqlResponseFilter rewrites the upstream's answer to filtered operations
// (one, or a batch in order).
type gqlResponseFilter struct {
	items []*filteredItem
	batch bool
}

func (f *gqlResponseFilter) FilterResponse(_ int, _ map[string]string, body []byte) []byte {
	if !f.batch {
		out, ok := f.items[0].patch(body)
		if !ok {
			return nil
		}
		return out
	}
	var answers []json.RawMessage
	if json.Unmarshal(body, &answers) != nil || len(answers) != len(f.items) {
		// Not an answer to the batch sent: left as it is (what was removed
		// was never asked, so nothing leaks; only the errors are missing).
		return nil
	}
	for i, it := range f.items {
		if it.answer != nil {
			answers[i] = it.answer
			continue
		}
		if out, ok := it.patch(answers[i]); ok {
			answers[i] = out
		}
	}
	return marshalAnswer(answers)
}

// patch applies the plan to one answer: nulls, propagation, errors added,
// injected keys removed. ok false: not a GraphQL answer, left alone.
func (it *filteredItem) patch(body []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var ans map[string]any
	if dec.Decode(&ans) != nil || ans == nil {
		return nil, false
	}
	if data, ok := ans["data"].(map[string]any); ok {
		if it.plan.applyObject(data) {
			ans["data"] = nil
		}
		stripInjected(ans["data"])
	}
	errs, _ := ans["errors"].([]any)
	for _, e := range it.errs {
		errs = append(errs, e)
	}
	if len(errs) > 0 {
		ans["errors"] = errs
	}
	return marshalAnswer(ans), true
}
