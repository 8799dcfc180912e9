# slaflow: `make run` (demo) and `make test` do every set-up step they need.
# Everything is installed inside this folder: .venv/ (Python) and deploy/kafka/lib/ (Kafka jars).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
KAFKA_VERSION := $(shell sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' deploy/kafka/pom.xml)
KAFKA_STAMP   := deploy/kafka/lib/$(KAFKA_VERSION)/.resolved
PY_STAMP      := $(VENV)/.installed
APT_GET       := $(shell command -v apt-get 2>/dev/null)
SUDO          := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DURATION ?=
PYTEST_ARGS ?=

.PHONY: setup run test lint unit integration bench kafka uncompile clean

COMPILED      := $(shell sed -n 's/^COMPILED = \[\(.*\)\]/\1/p' deploy/compile_core.py | tr -d '",')
COMPILE_STAMP := build/.compiled

setup: $(PY_STAMP) $(KAFKA_STAMP) $(COMPILE_STAMP) prometheus chromium

# The hot modules of the SLA core compiled to C extensions with mypyc (about twice as fast); the .so files sit
# beside the sources and win at import. If compiling fails, the pure-Python modules are used and nothing breaks.
$(COMPILE_STAMP): $(COMPILED) deploy/compile_core.py $(PY_STAMP)
	@rm -f streams/*.so
	@mkdir -p build
	@echo "compiling $(COMPILED) with mypyc ..."
	@$(BIN)/python deploy/compile_core.py > build/mypyc.log 2>&1 \
	  && touch streams/*.so && echo "compiled (log: build/mypyc.log)" \
	  || { rm -f streams/*.so; echo "note: mypyc failed (build/mypyc.log); the pure-Python core is used"; }
	@touch $@

# Python 3.11+ virtualenv with slaflow installed in editable mode (the `slaflow` CLI lands in .venv/bin).
$(PY_STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' || { \
	  echo "error: slaflow needs Python 3.11 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)." \
	       "Install it (Debian: apt-get install python3.11 python3.11-venv) or run make PYTHON=python3.11 ..."; exit 1; }
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV) || { \
	  echo "error: could not create a virtualenv; install the venv module (Debian: apt-get install python3-venv)."; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $@

# $(call apt-need,COMMANDS,PACKAGES,WHO NEEDS THEM): when one of COMMANDS is missing, install Debian's PACKAGES with
# apt-get if it is there (with sudo unless root), else print the exact command to run and fail.
define apt-need
	@missing=""; for c in $(1); do command -v $$c >/dev/null 2>&1 || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ -n "$(APT_GET)" ]; then \
	    echo "missing:$$missing; installing $(2) with apt-get ..."; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq $(2) >/dev/null || { \
	      echo "error: apt-get could not install $(2). Install them yourself (Debian: apt-get install $(2))" \
	           "and put$$missing on PATH."; exit 1; }; \
	  else \
	    echo "error: $(3) need$$missing, which are missing. Install them, e.g. 'apt-get install $(2)'."; exit 1; \
	  fi; \
	fi
endef

# Java and Maven for the local Kafka broker (or set KAFKA_BOOTSTRAP to use a broker you already run).
.PHONY: java-maven
java-maven:
	$(call apt-need,java mvn,openjdk-17-jdk-headless maven,the local Kafka broker (or set KAFKA_BOOTSTRAP))

# Prometheus and promtool (Debian's prometheus package) for the alert-rule tests and the integration tests' own
# server. The package may start a system service; the tests never use it (they start their own server on a free
# port of 127.0.0.1).
.PHONY: prometheus
prometheus:
	$(call apt-need,promtool prometheus,prometheus,the rule and integration tests)

# Chromium (Debian's chromium package) for the report test, which renders the HTML report headless and checks the
# screenshot.
.PHONY: chromium
chromium:
	$(call apt-need,chromium,chromium,the report test)

# The Apache Kafka broker and its runtime dependencies, resolved by Maven from deploy/kafka/pom.xml.
$(KAFKA_STAMP): deploy/kafka/pom.xml | java-maven
	@echo "resolving Apache Kafka $(KAFKA_VERSION) with Maven into deploy/kafka/lib/$(KAFKA_VERSION) ..."
	@mvn -B -q -f deploy/kafka/pom.xml dependency:copy-dependencies > deploy/kafka/maven.log 2>&1 || { \
	  echo "error: Maven could not resolve Apache Kafka $(KAFKA_VERSION) (see deploy/kafka/maven.log; last lines:)"; \
	  tail -n 15 deploy/kafka/maven.log; \
	  echo "Check that Maven's default repository can be reached (proxy settings in ~/.m2/settings.xml)," \
	       "or set KAFKA_BOOTSTRAP to use a broker you already run."; exit 1; }
	@touch $@

run: setup
	$(BIN)/slaflow run $(if $(DURATION),--duration $(DURATION))

test: setup lint
	$(BIN)/pytest $(PYTEST_ARGS)

unit: setup
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: setup
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

# Every benchmark; one JSON report in bench/results.json (a few minutes; never part of `make test`).
bench: setup
	$(BIN)/slaflow bench all --out bench/results.json

lint: $(PY_STAMP)
	$(BIN)/ruff check streams schemas agents sinks deploy tests
	$(BIN)/ruff format --check streams schemas agents sinks deploy tests
	$(BIN)/mypy

# A local broker in the foreground, for trying things by hand (Ctrl-C stops it).
kafka: setup
	$(BIN)/slaflow kafka

# Back to the pure-Python core (make setup compiles it again).
uncompile:
	rm -rf build streams/*.so

clean: uncompile
	rm -rf $(VENV) deploy/kafka/lib deploy/kafka/maven.log .data .pytest_cache .mypy_cache .ruff_cache
