# Developer entry points. `make run` and `make test` work on a fresh machine: they create the
# virtual environment (Python 3.13, the Lambda runtime, where it exists; else python3 >= 3.11) and
# install what they need.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first interpreter that runs and is 3.11+: python3.13 on PATH, one installed by pyenv, python3.
PYENV_313 := $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13)
PYTHON ?= $(firstword $(foreach p,python3.13 $(PYENV_313) python3,$(shell $(p) -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && echo $(p))))

# Lambda's interpreter, to ship bytecode it can use (/var/task is read-only: without it every cold start
# compiles every module again). Empty when this machine has no python3.13.
LAMBDA_PYTHON := $(firstword $(foreach p,python3.13 $(PYENV_313),$(shell $(p) -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && echo $(p))))
COMPILE = $(if $(LAMBDA_PYTHON),$(LAMBDA_PYTHON) -m compileall -q -j 0 --invalidation-mode unchecked-hash,echo "no python3.13 here: no bytecode shipped for")

VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
SAM_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
ENV ?= dev
export PATH := $(CURDIR)/$(TOOLS)/sam/bin:$(CURDIR)/$(TOOLS)/checkov/bin:$(PATH)

.PHONY: help venv venv-local tools run test unit lint format typecheck bench build preflight preflight-tools deploy deploy-lock invoke template events clean smtp

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "no Python 3.11+ found (tried python3.13 and python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# Two stamps: running (`make run`, `smtp`, `events`, `bench`) needs the package with its `local` extra
# only; testing needs the `dev` extra (lint, type checks, template tools), which includes `local`.
$(BIN)/.installed-local: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[local]"
	@touch $@

$(BIN)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@ $(BIN)/.installed-local

venv: $(BIN)/.installed ## Create .venv with the package and its dev tools

venv-local: $(BIN)/.installed-local ## Create .venv with what running needs (the package and its local extra)

# The SAM CLI from the hash-locked deploy/requirements.txt (aws-sam-cli==$(SAM_VERSION) and all it needs):
# the deploy job installs exactly these files, before it holds any AWS credentials. --no-deps: the lock is
# complete, and pip before 24 refuses a dependency with extras (boto3-stubs[...]) in hash-checking mode.
$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install --quiet --require-hashes --no-deps --only-binary=:all: -r deploy/requirements.txt

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)"

tools: $(SAM) $(CHECKOV) ## Install the SAM CLI and checkov, each in its own environment

# `forwarder preflight` for the deploy job, in its own environment and without the local extra (moto, aiosmtpd,
# dnspython ...): what preflight imports, from the hash-locked deploy/ops-requirements.txt, then this package
# built from the checkout with the locked setuptools; --no-index --no-build-isolation: nothing is fetched, so
# nothing unpinned. Always reinstalled: it is a copy of the checkout, not an editable install.
preflight-tools: ## Install forwarder (for preflight only) in .tools/ops from deploy/ops-requirements.txt (the deploy job)
	$(PYTHON) -m venv $(TOOLS)/ops
	$(TOOLS)/ops/bin/python -m pip install --quiet --require-hashes --no-deps --only-binary=:all: -r deploy/ops-requirements.txt
	$(TOOLS)/ops/bin/python -m pip install --quiet --no-deps --no-index --no-build-isolation .

run: venv-local ## Forward the sample mails in events/ through the real handler against an embedded AWS
	$(BIN)/forwarder run --events events --outbox outbox

smtp: venv-local ## Local SMTP server on 127.0.0.1:2525: mail to the sample domain is forwarded into outbox/
	$(BIN)/forwarder smtp --port 2525 --outbox outbox

test: venv tools ## The whole suite: lint, types, unit, integration, template checks
	$(BIN)/ruff check forwarder forwarder_ops tests bench custom_resources
	$(BIN)/ruff format --check forwarder forwarder_ops tests bench custom_resources
	$(BIN)/mypy
	$(BIN)/pytest

unit: venv ## Unit tests only (no AWS emulator, no external tools)
	$(BIN)/pytest tests/unit

lint: venv tools ## ruff, mypy, cfn-lint, sam validate --lint, checkov, the workflow (check-jsonschema, zizmor)
	$(BIN)/ruff check forwarder forwarder_ops tests bench custom_resources
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --region us-east-1
	$(CHECKOV) --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(BIN)/check-jsonschema --builtin-schema vendor.github-workflows .github/workflows/*.yml
	$(BIN)/zizmor --offline --persona pedantic --no-progress .github/workflows

format: venv ## Format and fix what ruff can
	$(BIN)/ruff format forwarder forwarder_ops tests bench custom_resources
	$(BIN)/ruff check --fix forwarder forwarder_ops tests bench custom_resources

bench: venv-local ## The forwarder against bare boto3 (S3 read + SES send): time, memory, cold start -> bench/results.md
	$(BIN)/python -m bench $(BENCH_ARGS)

events: venv-local ## Regenerate events/*.json from events/mail/*.eml
	$(BIN)/forwarder events build --source events/mail --out events

template: venv tools ## Template checks only: cfn-lint, sam validate, checkov, the transformed template, sam build
	$(BIN)/pytest tests/template

build: $(SAM) ## sam build: both functions, the dependencies layer and the custom resource, into .aws-sam/build
	$(SAM) build

deploy-lock: ## Regenerate the hash-locked deploy/requirements.txt, deploy/ops-requirements.txt and layers/deps/requirements.lock (needs uv)
	uv pip compile --universal --python-version 3.11 --generate-hashes --custom-compile-command "make deploy-lock" \
		deploy/requirements.in -o deploy/requirements.txt
	uv pip compile --universal --python-version 3.11 --generate-hashes --custom-compile-command "make deploy-lock" \
		deploy/ops-requirements.in -o deploy/ops-requirements.txt
	uv pip compile --python-version 3.13 --python-platform aarch64-manylinux2014 --generate-hashes \
		--custom-compile-command "make deploy-lock" layers/deps/requirements.txt -o layers/deps/requirements.lock

# With the operator's AWS credentials at hand: the hash-locked .tools/ops, as in the deploy job, not the .venv
# (`pip install -e ".[local]"` fetches whatever versions the index serves at that moment).
preflight: preflight-tools ## forwarder preflight --config-env $(ENV): what would make the deploy fail or do harm (read-only)
	$(TOOLS)/ops/bin/forwarder preflight --config-env $(ENV)

# Preflight first: it reads the account in seconds and stops on a finding (exit 1) before the build and before
# CloudFormation creates half the stack and rolls it back.
deploy: preflight build ## forwarder preflight, then sam deploy --config-env $(ENV) (make deploy ENV=prod); needs AWS credentials
	$(SAM) deploy --config-env $(ENV)

EVENT ?= forward
invoke: build ## sam local invoke ForwarderFunction -e events/$(EVENT).json --env-vars local-env.json (needs Docker)
	$(SAM) local invoke ForwarderFunction -e events/$(EVENT).json --env-vars local-env.json

# `sam build` runs these for the resources whose Metadata say `BuildMethod: makefile, ContextPath: .`, in a
# copy of the resource's CodeUri/ContentUri, with ARTIFACTS_DIR set: the function artifact holds the
# `forwarder` package at its top (handler forwarder.app.lambda_handler), the layer holds python/<wheels>.
build-ForwarderFunction build-DownloadFunction build-DeliveryFunction:
	mkdir -p "$(ARTIFACTS_DIR)/forwarder"
	cp -R . "$(ARTIFACTS_DIR)/forwarder/"
	find "$(ARTIFACTS_DIR)" -depth -name __pycache__ -type d -exec rm -rf {} +
	$(COMPILE) "$(ARTIFACTS_DIR)/forwarder"

# Wheels for Lambda's arm64 CPython 3.13 from any machine: no Docker, no local python3.13 needed.
build-DependenciesLayer:
	$(PYTHON) -m pip install --quiet --disable-pip-version-check --no-warn-conflicts --no-compile \
		--platform manylinux2014_aarch64 --implementation cp --python-version 3.13 --only-binary=:all: \
		--require-hashes --no-deps --target "$(ARTIFACTS_DIR)/python" -r requirements.lock
	$(COMPILE) "$(ARTIFACTS_DIR)/python"

build-RuleSetActivationFunction:
	cp rule_set_activation.py "$(ARTIFACTS_DIR)/"

clean: ## Remove build output and the outbox
	rm -rf .aws-sam outbox build
