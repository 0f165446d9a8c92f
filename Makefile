# Developer entry points. `make run` and `make test` work on a fresh machine: they create the
# virtual environment (Python 3.13, the Lambda runtime, where it exists; else python3 >= 3.11) and
# install what they need.

SHELL := /bin/bash
.DEFAULT_GOAL := help

# The first interpreter that runs and is 3.11+: python3.13 on PATH, one installed by pyenv, python3.
PYENV_313 := $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13)
PYTHON ?= $(firstword $(foreach p,python3.13 $(PYENV_313) python3,$(shell $(p) -c 'import sys; assert sys.version_info >= (3, 11)' >/dev/null 2>&1 && echo $(p))))

VENV := .venv
BIN := $(VENV)/bin
TOOLS := .tools
SAM_VERSION := 1.170.0
CHECKOV_VERSION := 3.3.30
SAM := $(TOOLS)/sam/bin/sam
CHECKOV := $(TOOLS)/checkov/bin/checkov
ENV ?= dev
export PATH := $(CURDIR)/$(TOOLS)/sam/bin:$(CURDIR)/$(TOOLS)/checkov/bin:$(PATH)

.PHONY: help venv tools run test unit lint format typecheck bench build deploy events clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "no Python 3.11+ found (tried python3.13 and python3)"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

venv: $(BIN)/.installed ## Create .venv with the package and its dev tools

$(SAM):
	$(PYTHON) -m venv $(TOOLS)/sam
	$(TOOLS)/sam/bin/python -m pip install --quiet "aws-sam-cli==$(SAM_VERSION)"

$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)/checkov
	$(TOOLS)/checkov/bin/python -m pip install --quiet "checkov==$(CHECKOV_VERSION)"

tools: $(SAM) $(CHECKOV) ## Install the SAM CLI and checkov, each in its own environment

run: venv ## Forward the sample mails in events/ through the real handler against an embedded AWS
	$(BIN)/forwarder run --events events --outbox outbox

test: venv tools ## The whole suite: lint, types, unit, integration, template checks
	$(BIN)/ruff check forwarder tests bench
	$(BIN)/ruff format --check forwarder tests bench
	$(BIN)/mypy
	$(BIN)/pytest

unit: venv ## Unit tests only (no AWS emulator, no external tools)
	$(BIN)/pytest tests/unit

lint: venv tools ## ruff, mypy, cfn-lint, sam validate --lint, checkov
	$(BIN)/ruff check forwarder tests bench
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml
	$(SAM) validate --lint --region us-east-1
	$(CHECKOV) --quiet --compact --framework cloudformation -f template.yaml

format: venv ## Format and fix what ruff can
	$(BIN)/ruff format forwarder tests bench
	$(BIN)/ruff check --fix forwarder tests bench

bench: venv ## The forwarder against bare boto3 (S3 read + SES send): time, memory, cold start -> bench/results.md
	$(BIN)/python -m bench $(BENCH_ARGS)

events: venv ## Regenerate events/*.json from events/mail/*.eml
	$(BIN)/forwarder events build --source events/mail --out events

clean: ## Remove build output and the outbox
	rm -rf .aws-sam outbox build
