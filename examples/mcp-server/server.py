"""platform-tools: an MCP server (the official `mcp` SDK, streamable HTTP)
behind gatehouse + Envoy (docs/mcp.md).

Like examples/fastapi-orders it trusts NOTHING but a valid
`x-gatehouse-assertion` (ES256, verified against gatehouse's JWKS, aud our
own entity): every request without one is refused before the MCP layer sees
it. Which tools a caller may use is gatehouse's decision (the catalog's
gatehouse.dev/mcp-tools); the server only reports who called.

Tools: list_components (read), deploy (write), read_secret_ref (a secret's
reference, never its value), whoami (the verified caller, and whether any
Authorization header reached us: it never should).

Environment:
  JWKS_URL          gatehouse's JWKS, http://<admin>/.well-known/jwks.json
  GATEHOUSE_ENTITY  our own entity ref, the assertion's aud (component:default/tools)
  GATEHOUSE_ISSUER  the assertion's iss (gatehouse)
  MCP_PATH          the MCP endpoint's path (default /tools/mcp, the API's gatehouse.dev/path-prefix)
Run:  examples/mcp-server/run.sh PORT   (uvicorn on 127.0.0.1:PORT)
"""

import contextvars
import json
import os

import jwt  # PyJWT[crypto]
from mcp.server.mcpserver import MCPServer
from mcp.server.transport_security import TransportSecuritySettings

JWKS_URL = os.environ.get("JWKS_URL", "http://127.0.0.1:9090/.well-known/jwks.json")
ENTITY = os.environ.get("GATEHOUSE_ENTITY", "component:default/tools")
ISSUER = os.environ.get("GATEHOUSE_ISSUER", "gatehouse")
MCP_PATH = os.environ.get("MCP_PATH", "/tools/mcp")
MAX_LIFETIME = 60
LEEWAY = 5

jwks = jwt.PyJWKClient(JWKS_URL, cache_jwk_set=True, lifespan=300, timeout=5)

# The verified caller of the request being served.
caller: contextvars.ContextVar[dict] = contextvars.ContextVar("caller", default={})

mcp = MCPServer("platform-tools", instructions="Platform tools behind gatehouse: who may call which tool is decided by the catalog.")

COMPONENTS = ["orders", "shop", "reports"]


@mcp.tool()
def list_components() -> list[str]:
    """List the catalog's components (read only)."""
    return COMPONENTS


@mcp.tool()
def deploy(component: str, version: str = "latest") -> str:
    """Deploy a component (a write)."""
    who = caller.get().get("sub", "?")
    return f"deployed {component}@{version} for {who}"


@mcp.tool()
def read_secret_ref(name: str) -> str:
    """The reference (never the value) of a secret."""
    return f"vault://platform/{name}"


@mcp.tool()
def whoami() -> dict:
    """Who gatehouse says is calling, as this server verified it."""
    c = caller.get()
    return {"sub": c.get("sub"), "kind": c.get("gh_kind"), "act": c.get("act"), "aud": c.get("aud"),
            "authorization_seen": c.get("_authorization_seen", False)}


def verify(assertion: str) -> dict:
    key = jwks.get_signing_key_from_jwt(assertion)
    claims = jwt.decode(assertion, key.key, algorithms=["ES256"], audience=ENTITY, issuer=ISSUER, leeway=LEEWAY,
                        options={"require": ["exp", "iat", "sub", "aud", "iss"]})
    if claims["exp"] - claims["iat"] > MAX_LIFETIME:
        raise jwt.InvalidTokenError("lifetime above 60s")
    return claims


class RequireAssertion:
    """ASGI middleware: 401 unless x-gatehouse-assertion verifies."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        if scope.get("path") == "/healthz":
            return await respond(send, 200, {"status": "ok"})
        assertion = headers.get("x-gatehouse-assertion")
        try:
            if not assertion:
                raise jwt.InvalidTokenError("missing x-gatehouse-assertion")
            claims = verify(assertion)
        except jwt.PyJWKClientConnectionError as e:
            return await respond(send, 503, {"error": "unavailable", "detail": f"cannot fetch gatehouse JWKS: {e}"})
        except jwt.PyJWTError as e:
            return await respond(send, 401, {"error": "unauthorized", "detail": f"invalid x-gatehouse-assertion: {e}"})
        claims["_authorization_seen"] = "authorization" in headers
        token = caller.set(claims)
        try:
            await self.app(scope, receive, send)
        finally:
            caller.reset(token)


async def respond(send, status: int, body: dict):
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


# Stateless JSON responses: any replica answers any request. Host checks
# are gatehouse's and Envoy's (the Host is the gateway's, not ours).
app = RequireAssertion(mcp.streamable_http_app(
    streamable_http_path=MCP_PATH, json_response=True, stateless_http=True,
    transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False)))
