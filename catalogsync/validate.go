package catalogsync

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// refField describes a spec field that holds entity refs and the kind Backstage
// assumes when a ref in it has none.
type refField struct {
	name        string
	defaultKind string
	get         func(*Spec) []string
}

func one(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

var (
	fOwner          = refField{"owner", "group", func(s *Spec) []string { return one(s.Owner) }}
	fSystem         = refField{"system", "system", func(s *Spec) []string { return one(s.System) }}
	fDomain         = refField{"domain", "domain", func(s *Spec) []string { return one(s.Domain) }}
	fSubcomponentOf = refField{"subcomponentOf", "component", func(s *Spec) []string { return one(s.SubcomponentOf) }}
	fProvidesAPIs   = refField{"providesApis", "api", func(s *Spec) []string { return s.ProvidesAPIs }}
	fConsumesAPIs   = refField{"consumesApis", "api", func(s *Spec) []string { return s.ConsumesAPIs }}
	fDependsOn      = refField{"dependsOn", "component", func(s *Spec) []string { return s.DependsOn }}
	fParent         = refField{"parent", "group", func(s *Spec) []string { return one(s.Parent) }}
	fChildren       = refField{"children", "group", func(s *Spec) []string { return s.Children }}
	fMembers        = refField{"members", "user", func(s *Spec) []string { return s.Members }}
	fMemberOf       = refField{"memberOf", "group", func(s *Spec) []string { return s.MemberOf }}
)

// kindRules: required spec fields and ref fields per kind, after Backstage's
// JSON schemas for the built-in kinds.
var kindRules = map[string]struct {
	required []string
	refs     []refField
}{
	KindComponent: {[]string{"type", "lifecycle", "owner"}, []refField{fOwner, fSystem, fSubcomponentOf, fProvidesAPIs, fConsumesAPIs, fDependsOn}},
	KindAPI:       {[]string{"type", "lifecycle", "owner", "definition"}, []refField{fOwner, fSystem}},
	KindSystem:    {[]string{"owner"}, []refField{fOwner, fDomain}},
	KindDomain:    {[]string{"owner"}, []refField{fOwner}},
	KindResource:  {[]string{"type", "owner"}, []refField{fOwner, fSystem, fDependsOn}},
	KindGroup:     {[]string{"type"}, []refField{fParent, fChildren, fMembers}},
	KindUser:      {nil, []refField{fMemberOf}},
	KindLocation:  {nil, nil},
}

// validate checks one decoded entity against Backstage's rules and gatehouse's
// annotations; n is its YAML node, for line numbers. It fills e.Routing.
func validate(e *Entity, n *yaml.Node) Problems {
	var ps Problems
	add := func(sev Severity, line int, field, msg, fix string) {
		ps = append(ps, Problem{Severity: sev, Line: line, Field: field, Message: msg, Fix: fix})
	}
	errf := func(line int, field, msg, fix string) { add(SeverityError, line, field, msg, fix) }

	switch {
	case e.APIVersion == "":
		errf(n.Line, "apiVersion", "missing", "add apiVersion: backstage.io/v1alpha1")
	case e.APIVersion != "backstage.io/v1alpha1" && e.APIVersion != "backstage.io/v1beta1":
		errf(lineOf(n, "apiVersion"), "apiVersion", "unsupported apiVersion "+quote(e.APIVersion), "use backstage.io/v1alpha1")
	}
	kind, known := kindByLower[strings.ToLower(e.Kind)]
	switch {
	case e.Kind == "":
		errf(n.Line, "kind", "missing", "add kind: Component (or API, System, Domain, Resource, Group, User, Location)")
	case !known:
		add(SeverityWarning, lineOf(n, "kind"), "kind", "kind "+quote(e.Kind)+" is not one gatehouse reads; the entity is ignored",
			"nothing to do if this is a custom kind; otherwise use Component, API, System, Domain, Resource, Group, User or Location")
		return ps
	default:
		e.Kind = kind
	}
	switch {
	case e.Metadata.Name == "":
		errf(lineOf(n, "metadata"), "metadata.name", "missing", "add metadata.name")
	case !validName(e.Metadata.Name):
		errf(lineOf(n, "metadata", "name"), "metadata.name", "invalid name "+quote(e.Metadata.Name),
			"use 1-63 characters [a-zA-Z0-9] separated by single - _ or .")
	}
	if e.Metadata.Namespace != "" && !validName(e.Metadata.Namespace) {
		errf(lineOf(n, "metadata", "namespace"), "metadata.namespace", "invalid namespace "+quote(e.Metadata.Namespace),
			"use 1-63 characters [a-zA-Z0-9] separated by single - _ or .")
	}
	if ps.Errors() > 0 || !known {
		return ps
	}
	rules := kindRules[kind]
	for _, f := range rules.required {
		if !hasSpecField(n, f) {
			errf(lineOf(n, "spec"), "spec."+f, "missing (required for kind "+kind+")", "add spec."+f)
		}
	}
	if kind == KindLocation && e.Spec.Target == "" && len(e.Spec.Targets) == 0 {
		errf(lineOf(n, "spec"), "spec.target", "a Location needs spec.target or spec.targets", "add spec.target: ./path/to/catalog-info.yaml")
	}
	ns := e.Ref().Namespace
	for _, rf := range rules.refs {
		for i, s := range rf.get(&e.Spec) {
			line := lineOfItem(n, i, "spec", rf.name)
			e.addRefLine(rf.name, line)
			r, err := ParseRef(s, rf.defaultKind, ns)
			switch {
			case err != nil:
				errf(line, "spec."+rf.name, err.Error(), "write the ref as [kind:][namespace/]name, e.g. "+rf.defaultKind+":default/example")
			case rf.name == fOwner.name && r.Kind != KindUser && r.Kind != KindGroup:
				errf(line, "spec.owner", "the owner "+r.String()+" is a "+r.Kind+"; Backstage allows only a User or Group as owner",
					"name the team (group:default/payments) or person (user:default/alice) responsible for it; to let a component call it, use spec.consumesApis, spec.dependsOn or gatehouse.dev/access")
			}
		}
	}
	ps = append(ps, checkAnnotationKeys(e, n)...)
	ps = append(ps, parseAnnotations(e, n)...)
	ps = append(ps, parseAccess(e, n)...)
	ps = append(ps, parseMesh(e, n)...)
	ps = append(ps, parseGraphQL(e, n)...)
	ps = append(ps, parseMCP(e, n)...)
	ps = append(ps, parseAgent(e, n)...)
	return ps
}

func hasSpecField(n *yaml.Node, field string) bool {
	for i := 0; n.Kind == yaml.MappingNode && i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value != "spec" {
			continue
		}
		spec := n.Content[i+1]
		for j := 0; spec.Kind == yaml.MappingNode && j+1 < len(spec.Content); j += 2 {
			if spec.Content[j].Value == field {
				v := spec.Content[j+1]
				return !(v.Kind == yaml.ScalarNode && (v.Value == "" || v.Tag == "!!null"))
			}
		}
	}
	return false
}

func quote(s string) string { return "\"" + s + "\"" }
