"""platform-graph: a GraphQL service (Strawberry on FastAPI) behind gatehouse.

The platform's data as a graph: components, their owners, and two
sensitive fields per component (its deploy-secret references and its cloud
account id) that only its owners may read. gatehouse enforces that from
the schema's own directives, published in the catalog
(examples/catalog/systems/platform.yaml, the API entity platform-graph):
in filter mode it removes the fields a caller may not read before this
service sees the query, so this service never has to.

It trusts NOTHING but a valid `x-gatehouse-assertion` (an ES256 JWT gatehouse
signs per request, verified against gatehouse's JWKS, as
examples/fastapi-orders does); `viewer` answers who that is.

With PLATFORM_GRAPH_ECHO=1 every answer carries the query this service
executed in `extensions.executed` (and it is logged), so you can see what
gatehouse let through.

Environment:
  JWKS_URL             gatehouse's JWKS, http://<admin>/.well-known/jwks.json
  GATEHOUSE_ENTITY     the assertion's aud (component:default/platform)
  GATEHOUSE_ISSUER     the assertion's iss (gatehouse)
  PLATFORM_GRAPH_DATA  the data file (default data.json beside this file)
  PLATFORM_GRAPH_ECHO  1: echo the executed query in extensions.executed
Run:  examples/platform-graph/run.sh PORT   (uvicorn on 127.0.0.1:PORT)
Print the schema:  python app.py --sdl
"""

import json
import logging
import os
import sys
from pathlib import Path
from typing import Optional

import jwt  # PyJWT[crypto]
import strawberry
from fastapi import FastAPI, HTTPException, Request
from strawberry.extensions import SchemaExtension
from strawberry.fastapi import GraphQLRouter
from strawberry.schema.config import StrawberryConfig
from strawberry.schema_directive import Location

JWKS_URL = os.environ.get("JWKS_URL", "http://127.0.0.1:9090/.well-known/jwks.json")
ENTITY = os.environ.get("GATEHOUSE_ENTITY", "component:default/platform")
ISSUER = os.environ.get("GATEHOUSE_ISSUER", "gatehouse")
DATA = Path(os.environ.get("PLATFORM_GRAPH_DATA", Path(__file__).with_name("data.json")))
ECHO = os.environ.get("PLATFORM_GRAPH_ECHO") == "1"
MAX_LIFETIME = 60
LEEWAY = 5

log = logging.getLogger("platform-graph")
jwks = jwt.PyJWKClient(JWKS_URL, cache_jwk_set=True, lifespan=300, timeout=5)


# Apollo Router's authorization directives, as the schema in the catalog
# carries them: gatehouse reads them there and enforces them.
@strawberry.schema_directive(locations=[Location.OBJECT, Location.FIELD_DEFINITION, Location.INTERFACE, Location.SCALAR, Location.ENUM], name="policy")
class Policy:
    policies: list[list[str]]


@strawberry.schema_directive(locations=[Location.OBJECT, Location.FIELD_DEFINITION, Location.INTERFACE, Location.SCALAR, Location.ENUM], name="authenticated")
class Authenticated:
    pass


def load() -> list[dict]:
    return json.loads(DATA.read_text())["components"]


@strawberry.type(description="A component of the platform (a service, a website, a library).")
class Component:
    name: str
    owner: str = strawberry.field(description="The owning group or user, as an entity ref.")
    system: Optional[str]
    lifecycle: str
    deploy_secret_refs: Optional[list[str]] = strawberry.field(
        description="Where its deploy secrets live: references, never values.",
        directives=[Policy(policies=[["owners"]])],
    )
    cloud_account_id: Optional[str] = strawberry.field(
        description="The cloud account it deploys to.",
        directives=[Policy(policies=[["owners"]])],
    )


def component(c: dict) -> Component:
    return Component(name=c["name"], owner=c["owner"], system=c.get("system"), lifecycle=c["lifecycle"],
                     deploy_secret_refs=c["deploySecretRefs"], cloud_account_id=c["cloudAccountId"])


@strawberry.type(description="An owner of components.")
class Owner:
    ref: str

    @strawberry.field
    def components(self) -> list[Component]:
        return [component(c) for c in load() if c["owner"] == self.ref]


@strawberry.type(description="The caller, as gatehouse's assertion names it.")
class Viewer:
    ref: str
    kind: str
    groups: list[str]


@strawberry.type
class Query:
    @strawberry.field(directives=[Authenticated()])
    def viewer(self, info: strawberry.Info) -> Viewer:
        c = info.context["claims"]
        return Viewer(ref=c["sub"], kind=c.get("gh_kind", ""), groups=c.get("gh_groups", []))

    @strawberry.field
    def components(self) -> list[Component]:
        return [component(c) for c in load()]

    @strawberry.field
    def component(self, name: str) -> Optional[Component]:
        return next((component(c) for c in load() if c["name"] == name), None)

    @strawberry.field(description="Every cloud account the platform deploys to.", directives=[Policy(policies=[["owners"]])])
    def cloud_accounts(self) -> list[str]:
        return sorted({c["cloudAccountId"] for c in load()})

    @strawberry.field
    def owners(self) -> list[Owner]:
        return [Owner(ref=r) for r in sorted({c["owner"] for c in load()})]


class Echo(SchemaExtension):
    """What this service executed, in the answer (PLATFORM_GRAPH_ECHO=1)."""

    def get_results(self) -> dict:
        ctx = self.execution_context
        log.info("executed %s", json.dumps({"query": ctx.query, "variables": ctx.variables}))
        if not ECHO:
            return {}
        # Whether the caller's token reached us (gatehouse removes it).
        creds = "authorization" in ctx.context["request"].headers
        return {"executed": {"query": ctx.query, "variables": ctx.variables, "credentialsReceived": creds}}


schema = strawberry.Schema(
    query=Query,
    extensions=[Echo],
    config=StrawberryConfig(batching_config={"max_operations": 20}, disable_field_suggestions=True),
)


def verify(assertion: Optional[str]) -> dict:
    """The verified claims of the caller, or 401 (see examples/fastapi-orders)."""
    if not assertion:
        raise HTTPException(401, "missing x-gatehouse-assertion")
    try:
        key = jwks.get_signing_key_from_jwt(assertion)
        claims = jwt.decode(assertion, key.key, algorithms=["ES256"], audience=ENTITY, issuer=ISSUER,
                            leeway=LEEWAY, options={"require": ["exp", "iat", "sub", "aud", "iss"]})
    except jwt.PyJWKClientConnectionError as e:
        raise HTTPException(503, f"cannot fetch gatehouse JWKS: {e}")
    except jwt.PyJWTError as e:
        raise HTTPException(401, f"invalid x-gatehouse-assertion: {e}")
    if claims["exp"] - claims["iat"] > MAX_LIFETIME:
        raise HTTPException(401, "invalid x-gatehouse-assertion: lifetime above 60s")
    return claims


# A plain def: FastAPI runs it in a thread pool (the rare JWKS fetch blocks).
def context(request: Request) -> dict:
    return {"claims": verify(request.headers.get("x-gatehouse-assertion")), "request": request}


app = FastAPI(title="platform-graph")
app.include_router(GraphQLRouter(schema, context_getter=context, graphql_ide=None), prefix="/platform/graphql")


@app.get("/platform/healthz")  # a gatehouse public path
def healthz() -> dict:
    return {"status": "ok"}


if __name__ == "__main__" and sys.argv[1:] == ["--sdl"]:
    print(schema.as_str())
