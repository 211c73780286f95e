# callwarden: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint typecheck pytest bench bench-tools sip-tools services install clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

## demo: start callwarden on the embedded default (SQLite, in-process) with a demo tenant and traffic
demo: $(STAMP)
	$(BIN)/callwarden demo --data-dir .demo

## test: install what the tests need, start backing services, then lint, type-check and run the suite
test: $(STAMP) services sip-tools lint typecheck pytest

services:
	./scripts/services.sh

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest

## bench: run every hot-path benchmark and print figures with their in-run baselines
bench: $(STAMP) services bench-tools sip-tools
	$(BIN)/python -m bench

# wrk generates HTTP load from a second process; valgrind counts the instructions a request
# costs the server (bench.admission_cost). Both Debian packages.
bench-tools:
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }

# The real SIP peers of the end-to-end tests: Kamailio with its modules, and sipp (Debian).
SIP_PACKAGES := kamailio kamailio-extra-modules kamailio-json-modules kamailio-utils-modules sip-tester
sip-tools:
	@command -v sipp >/dev/null && command -v kamailio >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SIP_PACKAGES); }

clean:
	rm -rf $(VENV) .demo .mypy_cache .ruff_cache .hypothesis
