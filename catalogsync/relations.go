package catalogsync

import (
	"sort"
)

// resolveRelations computes the relations of every entity in the set, both
// directions, as Backstage's built-in processor does, and returns new entity
// values (the inputs are not modified; each remembers which it was made
// from) and their ref keys. Refs to entities that are not in the set still
// produce relations (Backstage keeps them too) and a warning.
func resolveRelations(in []*Entity) ([]*Entity, []string, Problems) {
	byKey := make(map[string]*Entity, len(in))
	out := make([]*Entity, len(in))
	keys := make([]string, len(in))
	rels := make(map[string]map[Relation]struct{}, len(in))
	for i, e := range in {
		c := *e
		c.Relations = nil
		c.resolvedFrom = e
		out[i] = &c
		keys[i] = c.Ref().Key()
		byKey[keys[i]] = &c
	}
	var ps Problems
	link := func(from string, fwd string, to string, back string) {
		add := func(a, typ, b string) {
			m := rels[a]
			if m == nil {
				m = map[Relation]struct{}{}
				rels[a] = m
			}
			m[Relation{Type: typ, TargetRef: b}] = struct{}{}
		}
		add(from, fwd, to)
		add(to, back, from)
	}
	for i, e := range out {
		self := e.Ref()
		key := keys[i]
		rules, ok := kindRules[e.Kind]
		if !ok {
			continue
		}
		for _, rf := range rules.refs {
			for j, s := range rf.get(&e.Spec) {
				r, err := ParseRef(s, rf.defaultKind, self.Namespace)
				if err != nil {
					continue // validation already rejected such entities
				}
				t := r.Key()
				if _, ok := byKey[t]; !ok {
					ps = append(ps, unresolvedRef(e, rf.name, j, r))
				}
				switch rf.name {
				case "owner":
					link(key, RelOwnedBy, t, RelOwnerOf)
				case "system", "domain", "subcomponentOf":
					link(key, RelPartOf, t, RelHasPart)
				case "providesApis":
					link(key, RelProvidesAPI, t, RelAPIProvidedBy)
				case "consumesApis":
					link(key, RelConsumesAPI, t, RelAPIConsumedBy)
				case "dependsOn":
					link(key, RelDependsOn, t, RelDependencyOf)
				case "parent":
					link(key, RelChildOf, t, RelParentOf)
				case "children":
					link(key, RelParentOf, t, RelChildOf)
				case "members":
					link(key, RelHasMember, t, RelMemberOf)
				case "memberOf":
					link(key, RelMemberOf, t, RelHasMember)
				}
			}
		}
	}
	for i, e := range out {
		m := rels[keys[i]]
		if len(m) == 0 {
			continue
		}
		e.Relations = make([]Relation, 0, len(m))
		for r := range m {
			e.Relations = append(e.Relations, r)
		}
		sort.Slice(e.Relations, func(i, j int) bool {
			a, b := e.Relations[i], e.Relations[j]
			if a.Type != b.Type {
				return a.Type < b.Type
			}
			return a.TargetRef < b.TargetRef
		})
	}
	return out, keys, ps
}

// unresolvedRef is the warning for ref j of spec field of e, which names
// an entity that is not in the catalog, at the line the ref is written.
func unresolvedRef(e *Entity, field string, j int, r Ref) Problem {
	p := Problem{Severity: SeverityWarning, Source: e.Origin.Source, File: e.Origin.File, Line: e.refLine(field, j),
		Entity: e.Ref().String(), Field: "spec." + field,
		Message: "refers to " + r.String() + ", which is not in the catalog",
		Fix:     "add the entity to the catalog or correct the ref"}
	if field == fOwner.name && (e.Kind == KindComponent || e.Kind == KindResource) {
		p.Message += "; nobody owns this " + e.Kind + ", so until it is only explicit rules (gatehouse.dev/access) and declared consumers can reach it"
		p.Fix = "correct the owner's name (a Group or User in the catalog), or add that Group"
	}
	return p
}

// groupClosure returns, for every group and user key, the set of groups it is
// in transitively: a user's memberOf groups and all their ancestors (childOf),
// a group itself and its ancestors. Cycles in the group tree are tolerated.
func groupClosure(entities []*Entity) map[string][]string {
	parents := map[string][]string{}
	for _, e := range entities {
		if e.Kind == KindGroup {
			parents[e.Ref().Key()] = e.RelationTargets(RelChildOf)
		}
	}
	ancestors := map[string][]string{}
	var walk func(g string) []string
	walk = func(g string) []string {
		if a, ok := ancestors[g]; ok {
			return a
		}
		ancestors[g] = nil // cycle guard
		set := map[string]struct{}{g: {}}
		stack := append([]string(nil), parents[g]...)
		for len(stack) > 0 {
			p := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if _, ok := set[p]; ok {
				continue
			}
			set[p] = struct{}{}
			stack = append(stack, parents[p]...)
		}
		a := sortedKeys(set)
		ancestors[g] = a
		return a
	}
	out := map[string][]string{}
	for _, e := range entities {
		k := e.Ref().Key()
		switch e.Kind {
		case KindGroup:
			out[k] = walk(k)
		case KindUser:
			set := map[string]struct{}{}
			for _, g := range e.RelationTargets(RelMemberOf) {
				for _, a := range walk(g) {
					set[a] = struct{}{}
				}
			}
			out[k] = sortedKeys(set)
		}
	}
	return out
}

func sortedKeys(m map[string]struct{}) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
