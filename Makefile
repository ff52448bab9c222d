# dijkwacht — `make run` starts the demo, `make test` runs every test.
SHELL := /bin/bash

# Builds are slow on small machines: share one target directory across clones.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/dijkwacht-target
export DIJKWACHT_PG_PORT ?= 54329
export DIJKWACHT_TEST_DATABASE_URL ?= postgres://postgres@127.0.0.1:$(DIJKWACHT_PG_PORT)/postgres

BIN := $(CARGO_TARGET_DIR)/debug/dijkwacht
# Python tools for the tests (schemathesis), in a virtualenv shared across clones.
VENV ?= $(HOME)/.cache/dijkwacht-venv
SCHEMATHESIS_VERSION := 4.32.5
export DIJKWACHT_SCHEMATHESIS := $(VENV)/bin/schemathesis
# Tansu (a Kafka-compatible broker) for the multi-process tests, built once outside the clone.
export DIJKWACHT_TANSU := $(HOME)/.cache/dijkwacht-tools/bin/tansu

.PHONY: run test test-faults bench lint fmt schemas postgres postgres-stop build tools vendor

build:
	cargo build -p dijkwacht

## The demo: embedded Kafka, project-local PostgreSQL, simulated platform.
## Dossiers for regulators are signed with a key of the clone's own, made at the first run.
run: build postgres
	@mkdir -p .local && (test -f .local/demo-signing-key.pem || $(BIN) signing-key generate .local/demo-signing-key.pem)
	DIJKWACHT_REGULATOR__SIGNING_KEY=.local/demo-signing-key.pem $(BIN) --config infra/demo/dijkwacht.toml run

## Every test: unit, integration, end-to-end and the fault tests, among them the binary as
## separate processes on a Tansu broker (PostgreSQL and the tools are provisioned here).
test: postgres tools
	@infra/postgres.sh drop-test-databases
	cargo build -p dijkwacht
	@if cargo nextest --version >/dev/null 2>&1; then \
		cargo nextest run --workspace --no-fail-fast; \
	else \
		cargo test --workspace --no-fail-fast; \
	fi

## Only the fault tests: crash points, the broker forgetting, processes killed on Tansu.
test-faults: postgres tools
	cargo build -p dijkwacht
	cargo nextest run -p dijkwacht-tests -E 'test(/^crashes::/) | test(/^processes::/) | test(/^faults::/)'

## Benchmarks (release build); figures and their commands go to BENCHMARKS.md.
bench: postgres
	@infra/postgres.sh drop-test-databases
	cargo bench -p dijkwacht-classify --bench matching
	cargo bench -p dijkwacht-tests --bench bulk_intake
	@infra/postgres.sh drop-test-databases
	cargo build --release -p dijkwacht
	cargo bench -p dijkwacht-tests --bench pipeline
	@infra/postgres.sh drop-test-databases
	cargo bench -p dijkwacht-tests --bench dispatch
	@infra/postgres.sh drop-test-databases
	cargo bench -p dijkwacht-tests --bench timers
	@infra/postgres.sh drop-test-databases
	cargo bench -p dijkwacht-tests --bench hash_check
	cargo bench -p dijkwacht-tests --bench faults
	@infra/postgres.sh drop-test-databases
	cargo bench -p dijkwacht-tests --bench tracing
	@infra/postgres.sh drop-test-databases
	cargo bench -p dijkwacht-tests --bench regulator

lint:
	cargo fmt --all --check
	cargo clippy --workspace --all-targets -- -D warnings

fmt:
	cargo fmt --all

## Regenerates the committed JSON Schemas from the code.
schemas: build
	$(BIN) schemas --dir schemas

postgres:
	infra/postgres.sh start

## Test tools, built or installed once outside the clone: schemathesis, and the Tansu broker
## (10-15 minutes to build the first time).
tools:
	@if ! "$(DIJKWACHT_SCHEMATHESIS)" --version 2>/dev/null | grep -q "$(SCHEMATHESIS_VERSION)"; then \
		python3 -m venv "$(VENV)" && "$(VENV)/bin/pip" install -q "schemathesis==$(SCHEMATHESIS_VERSION)"; \
	fi
	@infra/tansu.sh install >/dev/null
	@# Debian's Chromium, headless, for the dashboard's browser test.
	@command -v chromium >/dev/null || apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 \
		|| (apt-get update >/dev/null && apt-get install -y --no-install-recommends chromium >/dev/null)

## The dashboard's charting library, vendored from npm into the build (no CDN at run time).
CHARTJS_VERSION := 4.6.1
vendor:
	@dir=$$(mktemp -d) && cd $$dir && npm pack -q chart.js@$(CHARTJS_VERSION) >/dev/null \
		&& tar -xzf chart.js-$(CHARTJS_VERSION).tgz \
		&& mkdir -p $(CURDIR)/services/projection/assets/chart.js-$(CHARTJS_VERSION) \
		&& cp package/dist/chart.umd.min.js package/LICENSE.md $(CURDIR)/services/projection/assets/chart.js-$(CHARTJS_VERSION)/

postgres-stop:
	infra/postgres.sh stop
