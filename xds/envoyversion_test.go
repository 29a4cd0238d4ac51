package xds

import (
	"testing"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// /debug/nodes shows an Envoy's version as 1.36.4, not as the protobuf text
// of its SemanticVersion ("major_number:1 minor_number:36 patch:4").
func TestEnvoyVersion(t *testing.T) {
	n := &core.Node{UserAgentVersionType: &core.Node_UserAgentBuildVersion{UserAgentBuildVersion: &core.BuildVersion{
		Version: &typev3.SemanticVersion{MajorNumber: 1, MinorNumber: 36, Patch: 4}}}}
	if got := envoyVersion(n); got != "1.36.4" {
		t.Errorf("envoyVersion = %q, want 1.36.4", got)
	}
	old := &core.Node{UserAgentVersionType: &core.Node_UserAgentVersion{UserAgentVersion: "1.12.0"}}
	if got := envoyVersion(old); got != "1.12.0" {
		t.Errorf("user_agent_version: %q", got)
	}
	if got := envoyVersion(&core.Node{}); got != "" {
		t.Errorf("no version: %q", got)
	}
}
