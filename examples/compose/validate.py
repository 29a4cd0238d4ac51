#!/usr/bin/env python3
"""Static checks of docker-compose.yml and the files it uses (no Docker needed).

  python3 examples/compose/validate.py      # exit 1 on a problem

Needs PyYAML (pip install pyyaml, or apt-get install python3-yaml).

Checks: every service has an image or a build (whose context and Dockerfile
exist); every bind-mounted file exists; depends_on names services; no host
port is published twice, and only Envoy's edge port on more than loopback;
the gatehouse image is built once; and the ports and names agree across
files: gatehouse.yaml listeners vs published/exposed ports, the Envoy
bootstrap's xDS address and admin port, authz.envoy_address, the catalog
(examples/catalog itself) upstreams vs the loopback ports orders and shop
listen on in Envoy's network namespace, JWKS_URL, and the Keycloak issuer.
"""
import glob
import json
import os
import re
import sys
from urllib.parse import urlparse

try:
    import yaml
except ImportError:
    sys.exit("validate.py needs PyYAML: pip install pyyaml (or apt-get install python3-yaml)")

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
problems = []


def check(ok, msg):
    if not ok:
        problems.append(msg)


def load(rel):
    with open(os.path.join(ROOT, rel)) as f:
        return yaml.safe_load(f)


def hostport(s):
    host, _, port = s.rpartition(":")
    return host, int(port)


compose = load("docker-compose.yml")
services = compose["services"]

# 1. image or build; build context and Dockerfile exist.
for name, svc in services.items():
    check("image" in svc or "build" in svc, f"{name}: neither image nor build")
    b = svc.get("build")
    if b is not None:
        ctx = b if isinstance(b, str) else b.get("context", ".")
        ctxp = os.path.join(ROOT, ctx)
        check(os.path.isdir(ctxp), f"{name}: build context {ctx} missing")
        df = "Dockerfile" if isinstance(b, str) else b.get("dockerfile", "Dockerfile")
        check(os.path.isfile(os.path.join(ctxp, df)), f"{name}: Dockerfile {df} (relative to {ctx}) missing")
    for dep in (svc.get("depends_on") or []):
        check(dep in services, f"{name}: depends_on unknown service {dep}")

# 2. bind mounts exist.
mounts = {}
for name, svc in services.items():
    for v in svc.get("volumes", []):
        src, dst = v.split(":")[:2]
        check(src.startswith("./"), f"{name}: volume {v} is not a relative bind mount")
        check(os.path.exists(os.path.join(ROOT, src)), f"{name}: mounted {src} does not exist")
        mounts[(name, dst)] = src


def report():
    for p in problems:
        print("PROBLEM:", p)
    print(f"{len(services)} services, {len(mounts)} mounts: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    sys.exit(1 if problems else 0)


if problems:  # the cross-file checks below read the mounted files
    report()


def published(name):
    out = {}
    for p in services[name].get("ports", []):
        parts = str(p).split(":")
        out[int(parts[-1])] = int(parts[-2])
    return out


def bound_to(name):
    """container port -> the host address it is published on ("" = all)."""
    out = {}
    for p in services[name].get("ports", []):
        parts = str(p).split(":")
        out[int(parts[-1])] = parts[0] if len(parts) == 3 else ""
    return out


def exposed(name):
    return {int(p) for p in services[name].get("expose", [])} | set(published(name))


# 3. no host port published twice.
seen = {}
for name in services:
    for c, h in published(name).items():
        check(h not in seen, f"host port {h} published by {name} and {seen.get(h)}")
        seen[h] = name

# 3b. only the edge faces other hosts; the rest (Keycloak's admin console
# with admin/admin, the admin ports) is on the host's loopback.
for name in services:
    for c, addr in bound_to(name).items():
        if name == "envoy" and c == 10000:
            continue
        check(addr == "127.0.0.1", f"{name}: port {c} is published on {addr or 'every interface'}, not 127.0.0.1")

# 3c. the gatehouse image is built once; shop runs it.
builders = [n for n, svc in services.items() if svc.get("build") in (".", "./")]
check(builders == ["gatehouse"], f"the gatehouse image (build .) is built by {builders}, want gatehouse only")
check(services["shop"].get("image") == services["gatehouse"].get("image") and "build" not in services["shop"],
      "shop does not run the image gatehouse builds")

# 4. cross-file consistency.
gh = load(mounts[("gatehouse", "/etc/gatehouse/gatehouse.yaml")])
check(services["gatehouse"]["command"][-1] == "/etc/gatehouse/gatehouse.yaml", "gatehouse: --config path differs from the mount")
check(gh["catalog"]["files"] == ["/etc/gatehouse/catalog"], "gatehouse.yaml: catalog.files is not the mounted catalog")
ports = {}
for key in ("xds", "authz", "admin"):
    host, port = hostport(gh[key]["listen"])
    check(host == "0.0.0.0", f"gatehouse.yaml: {key}.listen {gh[key]['listen']} is not 0.0.0.0")
    check(port in exposed("gatehouse"), f"gatehouse: {key} port {port} not exposed")
    ports[key] = port
h, p = hostport(gh["authz"]["envoy_address"])
check(h == "gatehouse" and p == ports["authz"], f"authz.envoy_address {gh['authz']['envoy_address']} != gatehouse:{ports['authz']}")

boot = load(mounts[("envoy", "/etc/envoy/edge.yaml")])
check(services["envoy"]["command"][-1] == "/etc/envoy/edge.yaml", "envoy: -c path differs from the mount")
adm = boot["admin"]["address"]["socket_address"]
check(adm["address"] == "0.0.0.0", "envoy-edge.yaml: admin not on 0.0.0.0")
check(published("envoy").get(adm["port_value"]), f"envoy: admin port {adm['port_value']} not published")
xds = boot["static_resources"]["clusters"][0]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
check((xds["address"], xds["port_value"]) == ("gatehouse", ports["xds"]), f"envoy-edge.yaml: xDS address {xds} != gatehouse:{ports['xds']}")
check(boot["node"]["metadata"]["role"] == "edge", "envoy-edge.yaml: node role is not edge")
check(gh["edge"]["port"] in published("envoy"), f"envoy: edge port {gh['edge']['port']} not published")

# Where each upstream listens (from its command line): on loopback, in
# Envoy's network namespace, where the catalog's 127.0.0.1 upstreams are.
listen = {}
for name in ("orders", "shop"):
    svc = services[name]
    cmd = " ".join(svc.get("entrypoint", []) + svc.get("command", []))
    m = re.search(r'127\.0\.0\.1:(\d+)', cmd) or re.search(r'"?--host"?,?\s*"?127\.0\.0\.1"?,?\s*"?--port"?,?\s*"?(\d+)', cmd)
    check(m is not None, f"{name}: cannot find its loopback listen port in {cmd!r}")
    check(svc.get("network_mode") == "service:envoy", f"{name}: not in Envoy's network namespace (network_mode: service:envoy)")
    check(not published(name), f"{name}: published on the host (would bypass Envoy)")
    if m:
        listen[int(m.group(1))] = name
envoy_ports = {adm["port_value"], gh["edge"]["port"]}
for port, name in listen.items():
    check(port not in envoy_ports, f"{name}: port {port} is also Envoy's (they share a network namespace)")
catalog_dir = mounts[("gatehouse", "/etc/gatehouse/catalog")]
check(catalog_dir == "./examples/catalog", f"gatehouse: mounts {catalog_dir} as the catalog, not the example catalog ./examples/catalog")
upstreams = {}
for f in glob.glob(os.path.join(ROOT, catalog_dir, "**", "*.yaml"), recursive=True):
    for doc in yaml.safe_load_all(open(f)):
        up = ((doc or {}).get("metadata", {}).get("annotations") or {}).get("gatehouse.dev/upstream")
        if up:
            upstreams[doc["metadata"]["name"]] = urlparse(up)
for comp, u in upstreams.items():
    check(u.hostname == "127.0.0.1" and listen.get(u.port) == comp,
          f"catalog: {comp} upstream {u.geturl()} is not where {comp} listens in Envoy's network namespace ({listen})")
check(set(upstreams) == {"orders", "shop"}, f"catalog upstreams: {sorted(upstreams)}")

jw = urlparse(services["orders"]["environment"]["JWKS_URL"])
check((jw.hostname, jw.port, jw.path) == ("gatehouse", ports["admin"], "/.well-known/jwks.json"), f"orders: JWKS_URL {jw.geturl()}")

kc = services["keycloak"]
realm = json.load(open(os.path.join(ROOT, mounts[("keycloak", "/opt/keycloak/data/import/realm-gatehouse.json")])))["realm"]
check(mounts[("keycloak", "/opt/keycloak/data/import/realm-gatehouse.json")] == "./examples/idp/realm-gatehouse.json", "keycloak: not the tests' realm file")
hostname = kc["environment"]["KC_HOSTNAME"]
hn = urlparse(hostname)
check(published("keycloak").get(8080) == hn.port, f"keycloak: KC_HOSTNAME port {hn.port} is not the published host port of 8080")
iss = [i for i in gh["issuers"] if i["name"] == "keycloak"]
check(len(iss) == 1, "gatehouse.yaml: no issuer keycloak")
if iss:
    check(iss[0]["issuer_url"] == f"{hostname}/realms/{realm}", f"issuer_url {iss[0]['issuer_url']} != {hostname}/realms/{realm}")
    check(iss[0]["jwks_url"] == f"http://keycloak:8080/realms/{realm}/protocol/openid-connect/certs", f"jwks_url {iss[0]['jwks_url']}")
    check("gatehouse" in iss[0]["audiences"], "issuer audiences lack gatehouse (the realm's audience mapper)")

report()
