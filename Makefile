# Common tasks. `make help` lists them.
SHELL := /bin/bash
GO ?= go
STACK ?= dev
FUZZTIME ?= 20s
# E2E_PARALLEL is how many end-to-end tests run at once: each mostly waits on deploys, health checks
# and load windows, so more than the cores pay off (its assertions are on correctness, not time).
E2E_PARALLEL ?= 3
E2E := set -o pipefail; source scripts/pulumi-env.sh && $(GO) test -json -tags e2e -count=1 -v -parallel $(E2E_PARALLEL)
# The e2e output, as go test -v prints it, ends with each failed test's last lines again: they
# would be lost in the middle of half an hour of parallel output.
TESTLOG := | $(GO) run ./internal/testing/testlog

STATICCHECK ?= honnef.co/go/tools/cmd/staticcheck@v0.8.2
ACTIONLINT ?= github.com/rhysd/actionlint/cmd/actionlint@v1.7.12
SHELL_SCRIPTS := $(wildcard scripts/*.sh infra/scripts/*.sh) .ci/run

.PHONY: help run test vet lint fuzz bench preview up down outputs secret preview-check e2e e2e-cluster e2e-all ci setup \
	status logs rollback backup restore psql exec up-check faults

help: ## list the targets
	@grep -hE '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## run the service locally (needs DATABASE_URL or PG* variables)
	$(GO) run ./service

vet: ## gofmt -l, go vet (also -tags e2e), staticcheck
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: not formatted:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags e2e ./...
	$(GO) run $(STATICCHECK) ./...
	$(GO) run $(STATICCHECK) -tags e2e ./...

lint: vet ## vet plus shellcheck of every shell script and actionlint of the workflows
	shellcheck -x $(SHELL_SCRIPTS)
	$(GO) run $(ACTIONLINT) .github/workflows/*.yml

test: lint ## make lint, then unit and integration tests with the race detector (real Postgres and nginx)
	$(GO) test -race -count=1 ./...

fuzz: ## run the write-path fuzz test for FUZZTIME (default 20s)
	$(GO) test -run='^$$' -fuzz='^FuzzCreateNote$$' -fuzztime=$(FUZZTIME) ./service/internal/httpapi

bench: ## load benchmark of the service against Postgres and pgbench
	$(GO) run ./bench

preview: ## pulumi preview of STACK (default dev; file backend and generated secrets on first use)
	STACK=$(STACK) scripts/stack.sh preview

up: ## deploy STACK (default dev) with pulumi up
	STACK=$(STACK) scripts/stack.sh up

down: ## destroy STACK (default dev)
	STACK=$(STACK) scripts/stack.sh destroy

outputs: ## show the stack outputs (URLs)
	STACK=$(STACK) scripts/stack.sh outputs

secret: ## set secret KEY (e.g. KEY=notes:tlsKey; value from stdin or a prompt) in the untracked secrets file
	STACK=$(STACK) scripts/stack.sh secret $(KEY)

status: ## containers (engine swarm: services and tasks) of STACK: state, health, image, app version, last backup age
	STACK=$(STACK) scripts/ops.sh status

logs: ## follow the logs of SERVICE (app, db, nginx, backup, certbot, migrate: its last run; default app)
	STACK=$(STACK) scripts/ops.sh logs $(or $(SERVICE),app)

rollback: ## redeploy the previous appVersion from the stack history (or VERSION=)
	STACK=$(STACK) VERSION=$(VERSION) scripts/ops.sh rollback

backup: ## a database dump now (prints its path in the backup volume)
	STACK=$(STACK) scripts/ops.sh backup

restore: ## restore FILE (a name from make status / notes-backup list), then migrate; asks unless YES=1
	STACK=$(STACK) YES=$(YES) scripts/ops.sh restore $(FILE)

psql: ## psql on the database as the owner role (over the container's socket; no password)
	STACK=$(STACK) scripts/ops.sh psql

exec: ## run CMD in a replica (engine swarm: a task), e.g. make exec CMD='/notes migrate status' (REPLICA=1)
	STACK=$(STACK) REPLICA=$(REPLICA) scripts/ops.sh exec $(CMD)

preview-check: ## a real pulumi preview of the dev config against the local dockerd
	source scripts/pulumi-env.sh && $(GO) test -tags e2e -count=1 -run '^TestPreviewDev$$' -v -timeout 20m ./infra/e2e

e2e: ## end-to-end: real pulumi up, redeploy under load, SSH, backup/restore, operations, destroy
	$(E2E) -timeout 60m -skip '^(TestFaults|TestCluster)$$' ./infra/e2e $(TESTLOG)

faults: ## fault suite under load (database outage, replica crash, /readyz flood, database and backup volume full, SSH dropped in each deploy phase, nginx configuration rejected); prints the fault table
	$(E2E) -run '^TestFaults$$' -timeout 40m ./infra/e2e $(TESTLOG)

e2e-cluster: ## engine swarm on three Docker daemons in network namespaces: up, redeploy and a node loss under load, destroy
	$(E2E) -timeout 40m -run '^TestCluster$$' ./internal/testing/cluster ./infra/e2e $(TESTLOG)

e2e-all: ## e2e, faults and e2e-cluster in one run, E2E_PARALLEL (default 3) tests at once: what make ci runs
	$(E2E) -timeout 75m ./internal/testing/cluster ./infra/e2e $(TESTLOG)

up-check: ## make up, its URLs answer, an e2e test next to it, make down; git status unchanged after each
	scripts/up-check.sh

setup: ## install and start what the tests need (Debian, root)
	bash scripts/ci-setup.sh

ci: setup test fuzz e2e-all up-check ## everything CI runs
