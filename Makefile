# CreditLedger build entry points. Everything needed is installed or started
# by these targets on a fresh machine (Go and Debian's apt are the only
# prerequisites).

SHELL := /bin/bash
GO    ?= go
BIN   := $(CURDIR)/bin
# Code generators and linters are pinned as tool directives in tools.mod (kept
# apart from go.mod so buf's pre-release protobuf never reaches the service)
# and built once into bin/.
TOOLS := $(BIN)/buf $(BIN)/protoc-gen-go $(BIN)/protoc-gen-go-grpc $(BIN)/protoc-gen-grpc-gateway \
         $(BIN)/protoc-gen-openapiv2 $(BIN)/golangci-lint

LEDGER_DATA_DIR ?= $(CURDIR)/.data

.PHONY: all tools generate check-generated lint build test run run-postgres demo pg-start pg-stop bench ci clean

all: build

$(TOOLS) &: tools.mod tools.sum
	$(GO) build -modfile=tools.mod -o $(BIN)/ tool

tools: $(TOOLS)

## generate: regenerate gen/ from proto/ (buf with local plugins, offline)
generate: $(TOOLS)
	$(BIN)/buf format -w
	$(BIN)/buf generate
	scripts/gen-openapi-embed.sh

## check-generated: fail if gen/ is stale
check-generated: generate
	git diff --exit-code -- gen/ proto/
	@test -z "$$(git status --porcelain -- gen/)" || { git status --porcelain -- gen/; echo "gen/ has untracked files: run make generate and commit"; exit 1; }

## lint: buf format/lint, go vet, golangci-lint, and the deploy stacks (check-deploy.sh runs
## their PostgreSQL and pgbouncer scripts against throwaway servers)
lint: $(TOOLS)
	$(BIN)/buf format -d --exit-code
	$(BIN)/buf lint
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...
	scripts/ensure-postgres.sh
	scripts/check-deploy.sh

## build: the binaries into bin/
build:
	$(GO) build -o $(BIN)/ ./cmd/...

## test: every test, race detector on; starts its own PostgreSQL (installs it if missing)
## and drives the portal in headless Chromium (installs it if missing)
test:
	scripts/ensure-postgres.sh
	scripts/ensure-chromium.sh
	$(GO) test -race -shuffle=on -count=1 -timeout 14m ./...

## run: ledgerd on the embedded store under .data/, development mode (no auth)
run: build
	LEDGER_AUTH=$${LEDGER_AUTH:-none} LEDGER_DATA_DIR=$(LEDGER_DATA_DIR) $(BIN)/ledgerd serve

## run-postgres: ledgerd on a local PostgreSQL cluster under .data/postgres
run-postgres: build
	scripts/pg-local.sh start
	LEDGER_MIGRATE_DATABASE_URL=$$(scripts/pg-local.sh url) $(BIN)/ledgerd migrate
	LEDGER_AUTH=$${LEDGER_AUTH:-none} LEDGER_DATABASE_URL=$$(scripts/pg-local.sh app-url) $(BIN)/ledgerd serve

## demo: ledgerd, checkout, invoicing, the Stripe stand-in and the portal, seeded;
## prints the portal's address; Ctrl-C stops everything (state starts afresh each time)
demo: build
	$(BIN)/demo --bin $(BIN) --data-dir $(CURDIR)/.data/demo

pg-start:
	scripts/pg-local.sh start

pg-stop:
	scripts/pg-local.sh stop

## bench: load benchmark vs pgbench on one throwaway PostgreSQL, and the embedded store (not part of test)
bench:
	scripts/bench.sh

## ci: what .ci/run runs
ci: test lint check-generated

clean:
	rm -rf $(BIN)
