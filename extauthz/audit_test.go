package extauthz

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// appendRecord writes exactly what json.Encoder writes.
func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	when := time.Date(2026, 11, 23, 10, 4, 5, 123456789, time.FixedZone("x", 3600))
	for _, r := range []AuditRecord{
		{},
		{Time: when, DecisionID: "d1", Method: "GET", Host: "h", Path: "/p", Decision: "deny", Status: 401, Reason: "no_token", LatencyUS: 12},
		{Time: when.UTC(), DecisionID: "d2", Principal: "user:default/alice", Kind: "user", Groups: []string{"group:default/a", "group:default/b"}, Scopes: []string{"openid", "orders:<read>"},
			ClientID: "web", Issuer: "https://idp", Peer: "component:default/a", Source: "10.0.0.1", Method: "POST", Host: "gw.example.com", Path: "/orders/1",
			RouteID: "component:default/orders@*/orders", Entity: "component:default/orders", Owner: "group:default/payments", System: "payments",
			Decision: "allow", Status: 200, Reason: "owner", Rule: "owner group:default/payments", Cached: true, Model: "v1", LatencyUS: 3},
		{DecisionID: "g", Decision: "deny", Status: 403, Reason: "field_forbidden", GraphQL: &AuditGraphQL{OperationType: "query", OperationName: "Q<", DocumentHash: "ab", Fields: 3, FieldNames: []string{"Query.a", "T.<b>"}, Mode: "reject",
			Denied: []DeniedField{{Field: "Component.secrets", Rule: "@policy on Component.secrets"}, {Field: "Team.x", Rule: "r\""}}, WouldDeny: true}},
		{DecisionID: "g0", GraphQL: &AuditGraphQL{}},
		{DecisionID: "g1", GraphQL: &AuditGraphQL{Fields: 2}},
		{DecisionID: "<script>&\"\\\n\t\x01\x7f é \u2028 \xff", Path: "/a b/%2F", Groups: []string{"\x00", ""}, Status: -1, LatencyUS: -5},
	} {
		var want bytes.Buffer
		if err := json.NewEncoder(&want).Encode(&r); err != nil {
			t.Fatal(err)
		}
		if got := appendRecord(nil, &r); !bytes.Equal(got, want.Bytes()) {
			t.Errorf("got  %s\nwant %s", got, want.Bytes())
		}
	}
}
