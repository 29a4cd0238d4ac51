package catalogsync

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/gatehouse-dev/gatehouse/internal/suggest"
)

// The gatehouse.dev/* annotations: gatehouse's user-facing contract on catalog
// entities (docs/catalog.md).
const (
	AnnUpstream   = "gatehouse.dev/upstream"
	AnnHosts      = "gatehouse.dev/hosts"
	AnnPathPrefix = "gatehouse.dev/path-prefix"
	AnnTimeout    = "gatehouse.dev/timeout"
)

// AnnPrefix is the annotation namespace gatehouse owns.
const AnnPrefix = "gatehouse.dev/"

// KnownAnnotations is every annotation in the gatehouse.dev/ namespace that
// gatehouse reads: any other key there is an error, because a misspelled
// annotation would otherwise be ignored and leave the entity silently
// unrouted or unprotected. A new annotation is added here (a test fails
// until it is).
var KnownAnnotations = []string{
	AnnUpstream, AnnHosts, AnnPathPrefix, AnnTimeout,
	AnnAccess, AnnPublicPaths, AnnIdpSubject, AnnIdpGroup, AnnClientID, AnnForwardToken,
	AnnMeshAddress, AnnSignIn, AnnSessionsNotBefore, AnnGraphQLAccess, AnnGraphQLOptions,
	AnnGraphQLSafelist, AnnGraphQLPolicies, AnnAgentLimits,
	AnnMCPTools, AnnMCPReadOnlyTools, AnnAssertionHeader,
}

// checkAnnotationKeys reports every gatehouse.dev/ annotation of e that is
// not in KnownAnnotations, with the known key it was probably meant to be.
func checkAnnotationKeys(e *Entity, n *yaml.Node) Problems {
	var ps Problems
	for key := range e.Metadata.Annotations {
		if !strings.HasPrefix(strings.ToLower(key), AnnPrefix) || slices.Contains(KnownAnnotations, key) {
			continue
		}
		fix := "use one of " + strings.Join(KnownAnnotations, ", ") + " (docs/catalog.md, docs/policy.md)"
		if s := suggest.Closest(key, KnownAnnotations); s != "" {
			fix = "did you mean " + s + "? Rename the key"
		}
		ps = append(ps, Problem{Severity: SeverityError, Line: lineOf(n, "metadata", "annotations", key), Field: "metadata.annotations[" + key + "]",
			Message: "unknown gatehouse annotation " + quote(key) + "; gatehouse does not read it, so the entity would not behave as written", Fix: fix})
	}
	slices.SortFunc(ps, func(a, b Problem) int { return a.Line - b.Line })
	return ps
}

// MaxRouteTimeout bounds gatehouse.dev/timeout.
const MaxRouteTimeout = time.Hour

// Routing is the parsed routing annotations of an entity.
type Routing struct {
	// Upstreams are the endpoints requests are sent to (Component, Resource).
	Upstreams []Endpoint `json:"upstreams,omitempty" yaml:"upstreams,omitempty"`
	// Hosts are the virtual host names; empty means the shared host.
	Hosts []string `json:"hosts,omitempty" yaml:"hosts,omitempty"`
	// PathPrefix, normalised without a trailing slash ("/" stays "/"); empty
	// means the default (see the model).
	PathPrefix string `json:"pathPrefix,omitempty" yaml:"pathPrefix,omitempty"`
	// Timeout of the route; zero means the default.
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
}

// Endpoint is one upstream address.
type Endpoint struct {
	Scheme string `json:"scheme" yaml:"scheme"` // http or https
	Host   string `json:"host" yaml:"host"`     // IP literal or DNS name
	Port   uint32 `json:"port" yaml:"port"`
}

func (ep Endpoint) String() string {
	return ep.Scheme + "://" + net.JoinHostPort(ep.Host, strconv.Itoa(int(ep.Port)))
}

// parseAnnotations validates the gatehouse.dev/* annotations of e and sets
// e.Routing. Which annotations a kind may carry: upstream, hosts and timeout
// on Component and Resource; path-prefix on those and on API.
func parseAnnotations(e *Entity, n *yaml.Node) Problems {
	var ps Problems
	line := func(key string) int { return lineOf(n, "metadata", "annotations", key) }
	bad := func(key, msg, fix string) {
		ps = append(ps, Problem{Severity: SeverityError, Line: line(key), Field: "metadata.annotations[" + key + "]", Message: msg, Fix: fix})
	}
	routable := e.Kind == KindComponent || e.Kind == KindResource
	r := &Routing{}
	any := false
	if v, ok := e.Annotation(AnnUpstream); ok {
		any = true
		if !routable {
			bad(AnnUpstream, "only a Component or Resource can have an upstream (this is a "+e.Kind+")", "move the annotation to the Component that serves this")
		} else if eps, err := parseUpstreams(v); err != "" {
			bad(AnnUpstream, err, "write one or more http(s)://host:port URLs separated by commas, e.g. http://10.0.0.7:8080")
		} else {
			r.Upstreams = eps
		}
	}
	if v, ok := e.Annotation(AnnHosts); ok {
		any = true
		if !routable {
			bad(AnnHosts, "only a Component or Resource can claim hosts", "put gatehouse.dev/hosts on the routed Component")
		} else if hs, err := parseHosts(v); err != "" {
			bad(AnnHosts, err, "write host names separated by commas, without scheme or port, e.g. orders.example.com, *.orders.example.com")
		} else {
			r.Hosts = hs
		}
	}
	if v, ok := e.Annotation(AnnPathPrefix); ok {
		any = true
		if !routable && e.Kind != KindAPI {
			bad(AnnPathPrefix, "only a Component, Resource or API can have a path prefix", "remove the annotation")
		} else if p, err := NormalizePathPrefix(v); err != "" {
			bad(AnnPathPrefix, err, "write an absolute path such as /orders or /orders/v2")
		} else {
			r.PathPrefix = p
		}
	}
	if v, ok := e.Annotation(AnnTimeout); ok {
		any = true
		d, err := time.ParseDuration(v)
		switch {
		case !routable:
			bad(AnnTimeout, "only a Component or Resource can have a timeout", "remove the annotation")
		case err != nil:
			bad(AnnTimeout, "invalid duration "+quote(v), "write a duration such as 15s, 500ms or 2m")
		case d <= 0 || d > MaxRouteTimeout:
			bad(AnnTimeout, "timeout "+v+" is out of range", "use a duration above 0 and at most 1h")
		default:
			r.Timeout = d
		}
	}
	if routable && len(r.Upstreams) == 0 && (len(r.Hosts) > 0 || r.PathPrefix != "" || r.Timeout > 0) && ps.Errors() == 0 {
		ps = append(ps, Problem{Severity: SeverityWarning, Line: line(AnnHosts), Field: "metadata.annotations[" + AnnUpstream + "]",
			Message: "routing annotations are set but there is no upstream, so the entity is not routed", Fix: "add gatehouse.dev/upstream"})
	}
	if any && ps.Errors() == 0 {
		e.Routing = r
	}
	return ps
}

func splitList(v string) []string {
	f := strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\t' })
	return f
}

func parseUpstreams(v string) ([]Endpoint, string) {
	items := splitList(v)
	if len(items) == 0 {
		return nil, "empty upstream"
	}
	var out []Endpoint
	seen := map[string]bool{}
	for _, it := range items {
		u, err := url.Parse(it)
		if err != nil || u.Host == "" {
			return nil, "invalid upstream URL " + quote(it)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return nil, "upstream " + quote(it) + " has scheme " + quote(u.Scheme) + "; only http and https are supported"
		}
		if (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
			return nil, "upstream " + quote(it) + " has a path, query or user info; the upstream is an address only"
		}
		host := u.Hostname()
		port := uint32(80)
		if u.Scheme == "https" {
			port = 443
		}
		if p := u.Port(); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil || n < 1 || n > 65535 {
				return nil, "upstream " + quote(it) + " has an invalid port"
			}
			port = uint32(n)
		}
		if net.ParseIP(host) == nil && !validDNSName(host) {
			return nil, "upstream " + quote(it) + " has an invalid host " + quote(host)
		}
		if len(out) > 0 && out[0].Scheme != u.Scheme {
			return nil, "upstreams mix http and https; one entity's endpoints must share a scheme"
		}
		ep := Endpoint{Scheme: u.Scheme, Host: strings.ToLower(host), Port: port}
		if !seen[ep.String()] {
			seen[ep.String()] = true
			out = append(out, ep)
		}
	}
	return out, ""
}

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

func validDNSName(h string) bool {
	h = strings.ToLower(strings.TrimSuffix(h, "."))
	if h == "" || len(h) > 253 {
		return false
	}
	for _, l := range strings.Split(h, ".") {
		if !dnsLabel.MatchString(l) {
			return false
		}
	}
	return true
}

func parseHosts(v string) ([]string, string) {
	items := splitList(v)
	if len(items) == 0 {
		return nil, "empty host list"
	}
	var out []string
	seen := map[string]bool{}
	for _, h := range items {
		h = strings.ToLower(h)
		name := strings.TrimPrefix(h, "*.")
		if strings.Contains(h, "://") || strings.Contains(h, ":") || strings.Contains(h, "/") {
			return nil, "host " + quote(h) + " must be a bare host name (no scheme, port or path)"
		}
		if !validDNSName(name) {
			return nil, "invalid host name " + quote(h)
		}
		if !seen[h] {
			seen[h] = true
			out = append(out, h)
		}
	}
	return out, ""
}

var prefixChars = regexp.MustCompile(`^[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$`)

// NormalizePathPrefix validates a path prefix and returns it without a
// trailing slash ("/" stays "/"), or an error message.
func NormalizePathPrefix(p string) (string, string) {
	switch {
	case !strings.HasPrefix(p, "/"):
		return "", "path prefix " + quote(p) + " must start with /"
	case strings.ContainsAny(p, "?#"):
		return "", "path prefix " + quote(p) + " must not contain a query or fragment"
	case strings.Contains(p, "//"):
		return "", "path prefix " + quote(p) + " contains an empty segment (//)"
	case !prefixChars.MatchString(p):
		return "", "path prefix " + quote(p) + " contains characters that are not allowed in a URL path"
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return "", "path prefix " + quote(p) + " contains a . or .. segment"
		}
	}
	if p != "/" {
		p = strings.TrimSuffix(p, "/")
	}
	return p, ""
}

// SharedHost is the virtual host of routed entities that claim no host.
const SharedHost = "*"

// RouteHosts returns the hosts an entity is routed on: its gatehouse.dev/hosts,
// or the shared host.
func (r *Routing) RouteHosts() []string {
	if len(r.Hosts) == 0 {
		return []string{SharedHost}
	}
	return r.Hosts
}

// RoutePrefix returns the entity's path prefix: gatehouse.dev/path-prefix, or
// "/" on its own hosts, or "/<name>" on the shared host.
func (r *Routing) RoutePrefix(name string) string {
	switch {
	case r.PathPrefix != "":
		return r.PathPrefix
	case len(r.Hosts) > 0:
		return "/"
	default:
		return "/" + name
	}
}

// RouteClaims returns "host prefix" strings for every host+prefix a routed
// entity claims (nil when it is not routed).
func (e *Entity) RouteClaims() []string {
	if e.Routing == nil || len(e.Routing.Upstreams) == 0 {
		return nil
	}
	p := e.Routing.RoutePrefix(e.Metadata.Name)
	var out []string
	for _, h := range e.Routing.RouteHosts() {
		out = append(out, h+" "+p)
	}
	return out
}
