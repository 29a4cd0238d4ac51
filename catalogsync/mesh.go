package catalogsync

import (
	"net"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// AnnMeshAddress puts a Component in the service mesh: host:port where other
// sidecars reach its sidecar's inbound listener (a Kubernetes Service name
// and the inbound port, e.g. orders.shop.svc:15006).
const AnnMeshAddress = "gatehouse.dev/mesh-address"

// Mesh is a Component's mesh membership.
type Mesh struct {
	Host string `json:"host" yaml:"host"` // IP literal or DNS name
	Port uint32 `json:"port" yaml:"port"`
}

// parseMesh validates gatehouse.dev/mesh-address and sets e.Mesh.
func parseMesh(e *Entity, n *yaml.Node) Problems {
	v, ok := e.Annotation(AnnMeshAddress)
	if !ok {
		return nil
	}
	field := "metadata.annotations[" + AnnMeshAddress + "]"
	bad := func(msg, fix string) Problems {
		return Problems{{Severity: SeverityError, Line: lineOf(n, "metadata", "annotations", AnnMeshAddress), Field: field, Message: msg, Fix: fix}}
	}
	if e.Kind != KindComponent {
		return bad("only a Component can be in the mesh (this is a "+e.Kind+")", "move the annotation to the Component whose sidecar serves this")
	}
	host, portStr, err := net.SplitHostPort(strings.TrimSpace(v))
	if err != nil {
		return bad("mesh address "+quote(v)+" is not host:port", "write where other sidecars reach this component's sidecar inbound listener, e.g. orders.shop.svc:15006")
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		return bad("mesh address "+quote(v)+" has an invalid port", "use a port 1-65535")
	}
	host = strings.ToLower(host)
	if net.ParseIP(host) == nil && !validDNSName(host) {
		return bad("mesh address "+quote(v)+" has an invalid host "+quote(host), "use an IP address or a DNS name")
	}
	e.Mesh = &Mesh{Host: host, Port: uint32(port)}
	return nil
}
