# Common tasks. `make help` lists them.
SHELL := /bin/bash
GO ?= go
STACK ?= dev
FUZZTIME ?= 20s

.PHONY: help run test vet fuzz bench preview up down outputs preview-check e2e ci setup

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

run: ## run the service locally (needs DATABASE_URL or PG* variables)
	$(GO) run ./service

vet: ## go vet
	$(GO) vet ./...

test: vet ## unit and integration tests with the race detector (real Postgres and nginx)
	$(GO) test -race -count=1 ./...

fuzz: ## run the write-path fuzz test for FUZZTIME (default 20s)
	$(GO) test -run='^$$' -fuzz='^FuzzCreateNote$$' -fuzztime=$(FUZZTIME) ./service/internal/httpapi

bench: ## load benchmark of the service against Postgres and pgbench
	$(GO) run ./bench

preview: ## pulumi preview of $(STACK) (default dev; file backend and generated secrets on first use)
	STACK=$(STACK) scripts/stack.sh preview

up: ## deploy $(STACK) (default dev) with pulumi up
	STACK=$(STACK) scripts/stack.sh up

down: ## destroy $(STACK)
	STACK=$(STACK) scripts/stack.sh destroy

outputs: ## show the stack outputs (URLs)
	STACK=$(STACK) scripts/stack.sh outputs

preview-check: ## a real pulumi preview of the dev config against the local dockerd
	source scripts/pulumi-env.sh && $(GO) test -tags e2e -count=1 -run '^TestPreviewDev$$' -v -timeout 20m ./infra/e2e

e2e: ## end-to-end: real pulumi up, redeploy under load, SSH, backup/restore, destroy
	source scripts/pulumi-env.sh && $(GO) test -tags e2e -count=1 -v -timeout 40m ./infra/e2e

setup: ## install and start what the tests need (Debian, root)
	bash scripts/ci-setup.sh

ci: setup test fuzz e2e ## everything CI runs
