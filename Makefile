# mcp-gateway developer commands. `make help` lists them.
#
#   make run:gateway   build, start hello-rs and the gateway on providers.yaml
#   make test          every test (installs Node for the MCP Inspector e2e test and
#                      nats-server for the events tests if missing)

SHELL := /bin/bash
CARGO ?= cargo
INSPECTOR_DIR := gateway/tests/inspector
CONFORMANCE_DIR := gateway/tests/conformance
PYTHON_DIR := gateway/tests/python
CONFIG ?= providers.yaml
# Where cargo puts binaries (honours CARGO_TARGET_DIR).
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
BENCH_ARGS ?=
# Minutes per soak phase (three phases: sessions, stateless, churn).
SOAK_MINUTES ?= 30
# Phases to run, comma-separated (session,stateless,churn; default all).
SOAK_PHASES ?=

.PHONY: help build test fmt lint check-config nats-deps test-deps bench-deps bench soak link-order bench-micro run\:gateway run\:hello-rs proto\:gen

help:
	@grep -E '^[a-z\\:-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/\\//g; s/:.*## /\t/' | column -t -s $$'\t'

build: ## Build every crate (debug)
	$(CARGO) build --workspace --bins

run\:gateway: build ## Start the gateway (http://127.0.0.1:8080/mcp), which launches hello-rs; Ctrl-C stops both
	@echo "gateway on http://127.0.0.1:8080/mcp, managing hello-rs on 127.0.0.1:50052 (Ctrl-C stops both)"
	@./target/debug/mcp-gateway --config $(CONFIG) --log-format text

run\:hello-rs: ## Start only the hello-rs provider on 127.0.0.1:50052
	$(CARGO) run -p hello-rs

proto\:gen: ## Regenerate the Rust code for proto/*.proto (protox: no protoc needed)
	$(CARGO) build -p mcp-gateway-proto

check-config: build ## Validate $(CONFIG)
	./target/debug/mcp-gateway check --config $(CONFIG)

nats-deps: ## Install nats-server (the events tests and the event-latency benchmark need a real NATS JetStream)
	@command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ] || { \
		echo "installing nats-server (Debian package)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nats-server; }

test-deps: nats-deps ## Install what the tests need: Node/npm, the pinned MCP Inspector and conformance suite, the Python MCP SDK, nats-server
	@command -v node >/dev/null && command -v npm >/dev/null || { \
		echo "installing nodejs and npm (Debian packages)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm; }
	@for dir in $(INSPECTOR_DIR) $(CONFORMANCE_DIR); do \
		if [ ! -d $$dir/node_modules ] || [ $$dir/package-lock.json -nt $$dir/node_modules ]; then \
			npm ci --prefix $$dir --no-audit --no-fund --loglevel=error || exit 1; \
		fi; \
	done
	@command -v python3 >/dev/null && python3 -c 'import venv, ensurepip' 2>/dev/null || { \
		echo "installing python3 and venv (Debian packages)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-venv; }
	@if [ ! -x $(PYTHON_DIR)/.venv/bin/python ] || [ $(PYTHON_DIR)/requirements.lock -nt $(PYTHON_DIR)/.venv/installed ]; then \
		echo "installing the Python MCP SDK ($(PYTHON_DIR)/requirements.lock)"; \
		python3 -m venv $(PYTHON_DIR)/.venv && \
		$(PYTHON_DIR)/.venv/bin/pip install -q --require-hashes -r $(PYTHON_DIR)/requirements.lock && \
		touch $(PYTHON_DIR)/.venv/installed || exit 1; \
	fi

test: test-deps build ## Run every test
	$(CARGO) test --workspace --no-fail-fast

fmt: ## Format all code
	$(CARGO) fmt --all

lint: ## Formatting check and clippy with warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

bench-deps: nats-deps ## What make bench needs: nats-server, valgrind (instructions per call)
	@command -v valgrind >/dev/null && command -v callgrind_control >/dev/null || { \
		echo "installing valgrind (Debian package)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; }

bench: bench-deps ## Release-build the gateway, hello-rs and mcp-bench; run the scenarios; print the table (docs/performance.md)
	$(CARGO) build --release -p mcp-gateway
	$(CARGO) build --release -p hello-rs -p bench
	$(TARGET_DIR)/release/mcp-bench run --bin-dir $(TARGET_DIR)/release --out bench/results $(BENCH_ARGS)

soak: ## Release-build; SOAK_MINUTES (30) per phase of fixed-rate load at 25% of capacity: sessions, stateless, churn (docs/performance.md)
	$(CARGO) build --release -p mcp-gateway
	$(CARGO) build --release -p hello-rs -p bench
	$(TARGET_DIR)/release/mcp-bench soak --bin-dir $(TARGET_DIR)/release --out bench/results --minutes $(SOAK_MINUTES) $(if $(SOAK_PHASES),--phases $(SOAK_PHASES))

link-order: bench-deps ## Regenerate gateway/link-order.txt (the functions the gateway runs, placed together by lld) from a callgrind run
	$(CARGO) build --release -p mcp-gateway
	$(CARGO) build --release -p hello-rs -p bench
	$(TARGET_DIR)/release/mcp-bench link-order --bin-dir $(TARGET_DIR)/release --out gateway/link-order.txt

bench-micro: ## Criterion micro-benchmarks (catalog lookup, schema check, JSON-RPC, result mapping)
	$(CARGO) bench -p bench --bench micro -- --warm-up-time 1 --measurement-time 2
certs: build ## Write a dev CA, provider server and gateway client certificates to certs/ (no openssl)
	./target/debug/mcp-gateway certs --out certs
