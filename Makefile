# erasure: local run, tests and builds. `make` alone lists the targets.
SHELL := /usr/bin/env bash
VENV_BIN := $(CURDIR)/.venv/bin
export PATH := $(VENV_BIN):$(PATH)
export SAM_CLI_TELEMETRY := 0
export AWS_DEFAULT_REGION ?= us-east-1

.DEFAULT_GOAL := help
.PHONY: help run test bench build sam-build tools

help: ## List the targets
	@echo "erasure - make targets:"
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

run: ## Run the service locally (dynalite, moto, cargo lambda watch, SQS bridge) until Ctrl-C
	scripts/run-local.sh

test: ## fmt, clippy, all tests against local emulators, SAM template checks
	scripts/test.sh

bench: ## Benchmarks: release zip sizes and cold starts; on their own dynalite and moto: cost per user vs table size, throughput, API latency
	scripts/bench.sh

tools: ## Install the local tools (.venv from requirements.txt, node_modules from package-lock.json)
	bash -c 'source scripts/lib.sh && ensure_tools'

build: tools ## Release build of the Lambda functions for x86_64 (cargo lambda build --release)
	cargo lambda build --release --x86-64

sam-build: tools ## Build the SAM application into .aws-sam/ (sam build)
	sam build -t template.yaml
