package catalogsync

import (
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/pathglob"
)

// Access annotations: who may call a routed entity beyond its owners and
// declared consumers, what needs no token, and how IdP identities map to
// catalog entities (docs/policy.md).
const (
	AnnAccess      = "gatehouse.dev/access"
	AnnPublicPaths = "gatehouse.dev/public-paths"
	AnnIdpSubject  = "gatehouse.dev/idp-subject"
	AnnIdpGroup    = "gatehouse.dev/idp-group"
	AnnClientID    = "gatehouse.dev/client-id"
	// AnnForwardToken: "true" passes the caller's Authorization header on
	// to the upstream (it is removed by default).
	AnnForwardToken = "gatehouse.dev/forward-token"
	// AnnSignIn: "off" makes a pure API answer browsers without a session
	// 401 instead of sending them to sign in ("on", the default, does).
	AnnSignIn = "gatehouse.dev/sign-in"
	// AnnSessionsNotBefore (a User's, an RFC 3339 time): browser sessions
	// of the user signed in before it are refused, on every replica, while
	// sessions after it and bearer tokens are not (docs/sign-in.md).
	AnnSessionsNotBefore = "gatehouse.dev/sessions-not-before"
	// AnnAssertionHeader: "authorization" sends the upstream gatehouse's
	// assertion as its bearer token (Authorization: Bearer <assertion>),
	// for upstreams that verify a bearer JWT against a JWKS (Backstage's
	// externalAccess jwks); "x-gatehouse-assertion" (the default) does not.
	AnnAssertionHeader = "gatehouse.dev/assertion-header"
)

// Access is the parsed access annotations of an entity.
type Access struct {
	Rules       []AccessRule `json:"rules,omitempty" yaml:"rules,omitempty"`
	PublicPaths []string     `json:"publicPaths,omitempty" yaml:"publicPaths,omitempty"`
	IdpSubjects []string     `json:"idpSubjects,omitempty" yaml:"idpSubjects,omitempty"` // User
	IdpGroups   []string     `json:"idpGroups,omitempty" yaml:"idpGroups,omitempty"`     // Group
	ClientIDs   []string     `json:"clientIds,omitempty" yaml:"clientIds,omitempty"`     // Component
	// ForwardToken keeps the caller's Authorization header for the upstream.
	ForwardToken bool `json:"forwardToken,omitempty" yaml:"forwardToken,omitempty"`
	// SignInOff: gatehouse.dev/sign-in: off (browsers get 401, never a
	// redirect to sign in).
	SignInOff bool `json:"signInOff,omitempty" yaml:"signInOff,omitempty"`
	// SessionsNotBefore (Unix seconds, a User's): sessions signed in
	// earlier are refused.
	SessionsNotBefore int64 `json:"sessionsNotBefore,omitempty" yaml:"sessionsNotBefore,omitempty"`
	// AssertionBearer: gatehouse.dev/assertion-header: authorization.
	AssertionBearer bool `json:"assertionBearer,omitempty" yaml:"assertionBearer,omitempty"`
}

// AccessRule is one explicit rule of gatehouse.dev/access.
type AccessRule struct {
	Allow   []string `json:"allow" yaml:"allow"`                         // ref keys: user:, group:, component:
	Methods []string `json:"methods,omitempty" yaml:"methods,omitempty"` // upper case; empty = any
	Paths   []string `json:"paths,omitempty" yaml:"paths,omitempty"`     // pathglob patterns; empty = any
}

var httpMethods = map[string]bool{"GET": true, "HEAD": true, "POST": true, "PUT": true, "PATCH": true, "DELETE": true, "OPTIONS": true, "CONNECT": true, "TRACE": true}

// parseAccess validates the access annotations of e and sets e.Access.
func parseAccess(e *Entity, n *yaml.Node) Problems {
	var ps Problems
	line := func(key string) int { return lineOf(n, "metadata", "annotations", key) }
	bad := func(key, msg, fix string) {
		ps = append(ps, Problem{Severity: SeverityError, Line: line(key), Field: "metadata.annotations[" + key + "]", Message: msg, Fix: fix})
	}
	routable := e.Kind == KindComponent || e.Kind == KindResource
	a := &Access{}
	set := false
	ns := e.Ref().Namespace

	if v, ok := e.Annotation(AnnAccess); ok {
		set = true
		raw, shapeErr := decodeAccessRules(v)
		switch {
		case !routable:
			bad(AnnAccess, "only a routed Component or Resource can have access rules", "move the rules to the Component that serves the paths")
		case shapeErr != "":
			bad(AnnAccess, shapeErr, accessShape)
		default:
			for i, r := range raw {
				where := "rule " + strconv.Itoa(i+1) + ": "
				if len(r.Allow) == 0 {
					bad(AnnAccess, where+"allow is empty", "list the users, groups or components the rule allows, e.g. allow: [group:default/readers]")
					continue
				}
				rule := AccessRule{}
				okRule := true
				for _, s := range r.Allow {
					ref, err := ParseRef(s, "", ns)
					if err != nil {
						bad(AnnAccess, where+err.Error(), "write refs with their kind: user:default/bob, group:default/readers or component:default/checkout")
						okRule = false
						continue
					}
					if k := ref.Kind; k != KindUser && k != KindGroup && k != KindComponent {
						bad(AnnAccess, where+"cannot allow a "+k+" ("+s+")", "allow users, groups or components")
						okRule = false
						continue
					}
					rule.Allow = append(rule.Allow, ref.Key())
				}
				for _, m := range r.Methods {
					mu := strings.ToUpper(strings.TrimSpace(m))
					if !httpMethods[mu] {
						bad(AnnAccess, where+"unknown method "+quote(m), "use HTTP methods such as GET, HEAD, POST, PUT, PATCH, DELETE")
						okRule = false
						continue
					}
					rule.Methods = append(rule.Methods, mu)
				}
				for _, p := range r.Paths {
					if _, err := pathglob.Compile(p); err != nil {
						bad(AnnAccess, where+err.Error(), "use patterns like /orders, /orders/* (one segment) or /orders/** (everything below)")
						okRule = false
						continue
					}
					rule.Paths = append(rule.Paths, p)
				}
				if okRule {
					a.Rules = append(a.Rules, rule)
				}
			}
		}
	}
	if v, ok := e.Annotation(AnnPublicPaths); ok {
		set = true
		if !routable {
			bad(AnnPublicPaths, "only a routed Component or Resource can have public paths", "move the annotation to the routed Component")
		}
		for _, p := range splitList(v) {
			pat, err := pathglob.Compile(p)
			_, prefix := pat.Prefix()
			switch {
			case err != nil:
				bad(AnnPublicPaths, err.Error(), "use exact paths (/healthz) or whole subtrees (/docs/**)")
			case !pat.Exact() && !prefix:
				bad(AnnPublicPaths, "public path "+quote(p)+" is neither exact nor a /prefix/** subtree", "use exact paths (/healthz) or whole subtrees (/docs/**); * is not allowed here")
			default:
				a.PublicPaths = append(a.PublicPaths, p)
			}
		}
	}
	if v, ok := e.Annotation(AnnForwardToken); ok {
		set = true
		switch {
		case !routable:
			bad(AnnForwardToken, "only a routed Component or Resource can forward tokens", "move the annotation to the routed Component")
		case v == "true":
			a.ForwardToken = true
		case v == "false":
		default:
			bad(AnnForwardToken, "value "+quote(v)+" is not true or false", `write "true" or "false"`)
		}
	}
	if v, ok := e.Annotation(AnnSignIn); ok {
		set = true
		switch {
		case !routable:
			bad(AnnSignIn, "only a routed Component or Resource is signed in to", "move the annotation to the routed Component")
		case v == "off":
			a.SignInOff = true
		case v == "on":
		default:
			bad(AnnSignIn, "value "+quote(v)+" is not on or off", `write "off" for a pure API (browsers get 401), or "on"`)
		}
	}
	if v, ok := e.Annotation(AnnSessionsNotBefore); ok {
		set = true
		t, err := time.Parse(time.RFC3339, strings.TrimSpace(v))
		switch {
		case e.Kind != KindUser:
			bad(AnnSessionsNotBefore, AnnSessionsNotBefore+" belongs on a User (this is a "+e.Kind+")", "move the annotation to the User whose sessions end")
		case err != nil:
			bad(AnnSessionsNotBefore, "value "+quote(v)+" is not an RFC 3339 time", `write the time sessions must be newer than, e.g. "2026-12-03T16:00:00Z" (date -u +%Y-%m-%dT%H:%M:%SZ)`)
		default:
			a.SessionsNotBefore = t.Unix()
		}
	}
	if v, ok := e.Annotation(AnnAssertionHeader); ok {
		set = true
		switch {
		case !routable:
			bad(AnnAssertionHeader, "only a routed Component or Resource gets an assertion", "move the annotation to the routed Component")
		case v == "authorization":
			a.AssertionBearer = true
			if a.ForwardToken {
				bad(AnnAssertionHeader, "the caller's token is forwarded (gatehouse.dev/forward-token), so Authorization cannot carry the assertion", "remove one of gatehouse.dev/forward-token and gatehouse.dev/assertion-header")
			}
		case v == "x-gatehouse-assertion":
		default:
			bad(AnnAssertionHeader, "value "+quote(v)+" is not authorization or x-gatehouse-assertion", `write "authorization" to send the assertion as the bearer token`)
		}
	}
	idList := func(key, kind string, dst *[]string) {
		v, ok := e.Annotation(key)
		if !ok {
			return
		}
		set = true
		if e.Kind != kind {
			bad(key, key+" belongs on a "+kind+" (this is a "+e.Kind+")", "move the annotation to the "+kind)
			return
		}
		items := splitList(v)
		if len(items) == 0 {
			bad(key, "empty value", "give one or more values separated by commas, or remove the annotation")
			return
		}
		*dst = items
	}
	idList(AnnIdpSubject, KindUser, &a.IdpSubjects)
	idList(AnnIdpGroup, KindGroup, &a.IdpGroups)
	idList(AnnClientID, KindComponent, &a.ClientIDs)
	if set && ps.Errors() == 0 {
		e.Access = a
	}
	return ps
}

// accessShape is the fix for a gatehouse.dev/access value of the wrong shape.
const accessShape = `write a YAML list of rules, each {allow: [refs], methods: [..], paths: [..]} (methods and paths optional), e.g. ` +
	`"- {allow: [group:default/readers, user:default/bob], methods: [GET, HEAD], paths: ['/orders/**']}" (docs/policy.md)`

type rawAccessRule struct {
	Allow   []string `yaml:"allow"`
	Methods []string `yaml:"methods"`
	Paths   []string `yaml:"paths"`
}

var nodeKindName = map[yaml.Kind]string{yaml.ScalarNode: "a single value", yaml.MappingNode: "a mapping", yaml.SequenceNode: "a list", yaml.AliasNode: "an alias"}

// decodeAccessRules reads a gatehouse.dev/access value, or says in catalog
// terms (not Go types) what is wrong with its shape.
func decodeAccessRules(v string) ([]rawAccessRule, string) {
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(v), &doc); err != nil {
		return nil, "invalid YAML: " + trimYAMLErr(err)
	}
	if len(doc.Content) == 0 {
		return nil, "empty value: expected a list of rules"
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, "the value is " + nodeKindName[list.Kind] + ", not a list of rules (each rule starts with \"- \")"
	}
	raw := make([]rawAccessRule, len(list.Content))
	for i, item := range list.Content {
		where := "rule " + strconv.Itoa(i+1) + ": "
		if item.Kind != yaml.MappingNode {
			return nil, where + "is " + nodeKindName[item.Kind] + ", not a mapping with allow, methods and paths"
		}
		for j := 0; j+1 < len(item.Content); j += 2 {
			key, val := item.Content[j].Value, item.Content[j+1]
			var dst *[]string
			switch key {
			case "allow":
				dst = &raw[i].Allow
			case "methods":
				dst = &raw[i].Methods
			case "paths":
				dst = &raw[i].Paths
			default:
				return nil, where + "unknown key " + quote(key) + "; a rule has allow, methods and paths"
			}
			if val.Kind != yaml.SequenceNode {
				return nil, where + key + " is " + nodeKindName[val.Kind] + ", not a list (write " + key + ": [a, b])"
			}
			if val.Decode(dst) != nil {
				return nil, where + key + " must list plain values (write " + key + ": [a, b])"
			}
		}
	}
	return raw, ""
}
