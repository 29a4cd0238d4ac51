"""orders: a FastAPI service behind gatehouse + Envoy.

The reference for how a Python service consumes gatehouse identities. It
trusts NOTHING but a valid `x-gatehouse-assertion`: an ES256 JWT that
gatehouse signs per request and that we verify against gatehouse's JWKS.
`x-gatehouse-user`, `-groups` and `-entity` are conveniences for logs; anyone
who can reach this port directly can set them, so they never decide access.

Environment:
  JWKS_URL          gatehouse's JWKS, http://<admin>/.well-known/jwks.json
  GATEHOUSE_ENTITY  our own entity ref, the assertion's aud (component:default/orders)
  GATEHOUSE_ISSUER  the assertion's iss (gatehouse)
Run:  examples/fastapi-orders/run.sh PORT   (uvicorn on 127.0.0.1:PORT)
"""

import os

import jwt  # PyJWT[crypto]
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse

JWKS_URL = os.environ.get("JWKS_URL", "http://127.0.0.1:9090/.well-known/jwks.json")
ENTITY = os.environ.get("GATEHOUSE_ENTITY", "component:default/orders")
ISSUER = os.environ.get("GATEHOUSE_ISSUER", "gatehouse")
MAX_LIFETIME = 60  # gatehouse never issues assertions valid for longer
LEEWAY = 5  # seconds of clock skew tolerated on exp/nbf/iat

# Caches the key set (5 min) and refetches it when an assertion carries an
# unknown kid (gatehouse publishes the next key a full period before it
# signs with it, so rotation never causes a miss).
jwks = jwt.PyJWKClient(JWKS_URL, cache_jwk_set=True, lifespan=300, timeout=5)

app = FastAPI(title="orders")


class Unauthorized(Exception):
    pass


@app.exception_handler(Unauthorized)
def unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
    return JSONResponse({"error": "unauthorized", "detail": str(exc)}, status_code=401)


# A plain `def`: FastAPI runs it in a thread pool, so the (rare) blocking
# JWKS fetch does not stall the event loop.
def identity(x_gatehouse_assertion: str | None = Header(None)) -> dict:
    """The verified claims of the caller, or 401."""
    if not x_gatehouse_assertion:
        raise Unauthorized("missing x-gatehouse-assertion")
    try:
        key = jwks.get_signing_key_from_jwt(x_gatehouse_assertion)
        claims = jwt.decode(
            x_gatehouse_assertion,
            key.key,
            algorithms=["ES256"],  # never take the algorithm from the token
            audience=ENTITY,  # issued for us, not replayed from another service
            issuer=ISSUER,
            leeway=LEEWAY,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.PyJWKClientConnectionError as e:
        raise HTTPException(503, f"cannot fetch gatehouse JWKS: {e}")
    except jwt.PyJWTError as e:  # bad signature, unknown kid, expired, wrong aud...
        raise Unauthorized(f"invalid x-gatehouse-assertion: {e}")
    if claims["exp"] - claims["iat"] > MAX_LIFETIME:
        raise Unauthorized("invalid x-gatehouse-assertion: lifetime above 60s")
    return claims


def identity_headers(request: Request) -> dict:
    """The x-gatehouse-* headers as received, to show what Envoy added (the
    assertion shortened). Shown, never trusted: only the claims above are."""
    out = {}
    for name, value in request.headers.items():
        if name.startswith("x-gatehouse-"):
            out[name] = value[:24] + "..." if name == "x-gatehouse-assertion" else value
    return dict(sorted(out.items()))


def describe(claims: dict, x_gatehouse_user: str | None, request: Request) -> dict:
    return {
        "caller": claims["sub"],
        "kind": claims.get("gh_kind"),
        "groups": claims.get("gh_groups", []),
        "client": claims.get("gh_client"),
        "email": claims.get("email"),
        # An AI agent calling for the caller (a delegated token's act,
        # docs/agents.md): the caller is still the person; the agent is
        # who acts. None when the caller calls for itself.
        "actor": (claims.get("act") or {}).get("sub"),
        # Informational only: the header must agree with the assertion when
        # the request came through Envoy; a mismatch means someone set it.
        "user_header_matches": x_gatehouse_user in (None, claims["sub"]),
        "headers": identity_headers(request),
    }


@app.get("/orders/healthz")  # a gatehouse public path: no identity at all
def healthz() -> dict:
    return {"status": "ok"}


@app.get("/orders/v1/whoami")
def whoami(request: Request, claims: dict = Depends(identity), x_gatehouse_user: str | None = Header(None)) -> dict:
    return describe(claims, x_gatehouse_user, request) | {"route": claims.get("gh_route"), "aud": claims["aud"]}


@app.get("/orders/{order_id}")
def get_order(order_id: str, request: Request, claims: dict = Depends(identity), x_gatehouse_user: str | None = Header(None)) -> dict:
    return {"order": order_id} | describe(claims, x_gatehouse_user, request)
