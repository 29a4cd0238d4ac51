package testcatalog

// PlatformGraphSDL is the schema of PlatformGraph: a platform graph with
// restricted fields (Apollo's directives), an interface whose field one
// implementation restricts, and a type the annotation restricts.
const PlatformGraphSDL = `interface Node {
  id: ID!
  internalNotes: String
}

type Query {
  component(name: String!): Component
  components: [Component!]!
  node(id: ID!): Node
  team(name: String!): Team
  viewer: String @authenticated
  audit: [String!]! @policy(policies: [["group:default/sre"]])
}

type Mutation {
  deploy(name: String!): Boolean @policy(policies: [["owners"]])
}

type Component implements Node {
  id: ID!
  name: String!
  owner: String!
  internalNotes: String @policy(policies: [["owners"]])
  deploySecrets: [String!]! @policy(policies: [["owners"]])
  cloudAccount: CloudAccount
  scoped: String @requiresScopes(scopes: [["read:scoped"]])
  deployKey: String @requiresScopes(scopes: [["deploy:read", "deploy:write"], ["platform:admin"]])
}

type CloudAccount @policy(policies: [["owners"], ["group:default/storefront", "user:default/bob"]]) {
  accountId: String!
}

type Team implements Node {
  id: ID!
  name: String!
  internalNotes: String
  budget: Int
}
`

// PlatformGraph is Teams plus a GraphQL API, platform-graph (owned by
// payments, served by platform at /platform/graphql), its schema
// PlatformGraphSDL, Team.budget restricted by the annotation, and a
// consumer component, shop (client id shop).
var PlatformGraph = Teams + `apiVersion: backstage.io/v1alpha1
kind: Group
metadata: {name: sre}
spec: {type: team, children: []}
---
apiVersion: backstage.io/v1alpha1
kind: User
metadata: {name: carol}
spec: {profile: {email: carol@example.com}, memberOf: [sre]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: platform
  annotations:
    gatehouse.dev/upstream: http://10.0.0.9:8080
    gatehouse.dev/access: |
      - allow: [group:default/storefront, group:default/sre]
spec: {type: service, lifecycle: production, owner: payments, providesApis: [platform-graph]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: shop
  annotations: {gatehouse.dev/client-id: shop}
spec: {type: service, lifecycle: production, owner: storefront, consumesApis: [platform-graph]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: platform-graph
  annotations:
    gatehouse.dev/path-prefix: /platform/graphql
    gatehouse.dev/graphql-access: |
      Team.budget: [owners, consumers]
spec:
  type: graphql
  lifecycle: production
  owner: payments
  definition: |
` + indentedSDL + `---
`

var indentedSDL = indent(PlatformGraphSDL, "    ")

func indent(s, by string) string {
	out := ""
	line := ""
	for _, r := range s {
		line += string(r)
		if r == '\n' {
			if line != "\n" {
				line = by + line
			}
			out += line
			line = ""
		}
	}
	return out + line
}
