package testcatalog

// PlatformMCP is Teams plus an MCP server's API, platform-tools (owned by
// payments, served by tools at /tools/mcp), with tool rules: deploy for
// the owners, read_secret_* for group sre, *_admin for alice; any other
// tool is open to whoever the route allows (the owners, storefront and sre
// by an access rule, and the consumer copilot, client id copilot, an AI
// agent limited to the read-only tools list_components, whoami, read_*).
var PlatformMCP = Teams + `apiVersion: backstage.io/v1alpha1
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
  name: tools
  annotations:
    gatehouse.dev/upstream: http://10.0.0.7:8000
    gatehouse.dev/path-prefix: /tools
    gatehouse.dev/access: |
      - allow: [group:default/storefront, group:default/sre]
spec: {type: service, lifecycle: production, owner: payments, providesApis: [platform-tools]}
---
apiVersion: backstage.io/v1alpha1
kind: Component
metadata:
  name: copilot
  annotations: {gatehouse.dev/client-id: copilot}
spec: {type: ai-agent, lifecycle: production, owner: storefront, consumesApis: [platform-tools]}
---
apiVersion: backstage.io/v1alpha1
kind: API
metadata:
  name: platform-tools
  annotations:
    gatehouse.dev/path-prefix: /tools/mcp
    gatehouse.dev/mcp-read-only-tools: "[list_components, whoami, read_*]"
    gatehouse.dev/mcp-tools: |
      deploy: [owners]
      "read_secret_*": [group:default/sre]
      "*_admin": [user:default/alice]
spec:
  type: mcp
  lifecycle: production
  owner: payments
  definition: "MCP server: list_components, deploy, read_secret_ref"
---
`

// PlatformMCPRoute is the route id of PlatformMCP's MCP API on the shared host.
const PlatformMCPRoute = "api:default/platform-tools@*/tools/mcp"
