# sentiment-api: one entry point for running, testing and building. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
SAM       := .venv-sam/bin/sam
MODEL_DIR ?= .cache/model
PORT      ?= 3000
MODEL_PORT ?= 8080
SUB       ?= alice
REGION    ?= us-east-1
# sam build needs a working python3.12 on PATH (the pyenv shim alone fails): put the real one first.
PY312_DIR := $(shell dirname "$$(scripts/find-python.sh 3.12 2>/dev/null || echo /nonexistent/python3.12)")
export PATH := $(PY312_DIR):$(PATH)
export PYTHONPATH := layers/common:local:model
export PYTHONUNBUFFERED := 1

.PHONY: help venv venv-sam model run token test check lint types validate build bench diagram clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: ## create/refresh .venv (Python 3.12, pinned requirements)
	@scripts/bootstrap.sh app

venv-sam: ## create/refresh .venv-sam (SAM CLI)
	@scripts/bootstrap.sh sam

model: venv ## build the model artefact from the pinned dataset package if it is missing
	@$(PY) -m sentiment_model.build --out $(MODEL_DIR) --if-missing

run: model ## start the local stack: HTTP API on :$(PORT) (JWT checked) -> predict handler -> model server
	@$(PY) -m local_stack serve --port $(PORT) --model-port $(MODEL_PORT) --model-dir $(MODEL_DIR)

token: venv ## print a development bearer token (SUB=alice selects the user)
	@$(PY) -m local_stack token --sub $(SUB)

test: venv venv-sam model ## set up from scratch and run every check and test (what CI runs)
	@$(MAKE) --no-print-directory lint types
	@$(PY) -m pytest -q

check: test ## alias of test

lint: venv ## ruff + cfn-lint on the SAM template
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/cfn-lint template.yaml

types: venv ## mypy on the shipped code
	@$(VENV)/bin/mypy layers/common/sentiment_common functions local/local_stack model/sentiment_model

validate: venv-sam ## sam validate --lint (no credentials needed)
	@$(SAM) validate --lint --region $(REGION)

build: venv-sam ## sam build (into .aws-sam/)
	@$(SAM) build

bench: model ## benchmarks that print figures (cold import, model latency, local API latency)
	@$(PY) bench/cold_import.py
	@$(PY) bench/model_latency.py --model-dir $(MODEL_DIR)
	@$(PY) bench/local_latency.py --model-dir $(MODEL_DIR)

diagram: ## re-render docs/diagram.png from docs/diagram.dot (needs graphviz)
	@command -v dot >/dev/null || { echo "install graphviz (apt-get install graphviz)"; exit 1; }
	dot -Tpng -Gdpi=110 docs/diagram.dot -o docs/diagram.png

clean: ## remove build outputs and caches (keeps the virtualenvs)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
