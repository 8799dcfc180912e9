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

# Java and Maven: installed with apt-get when missing and possible, else the exact command to run is printed.
.PHONY: java-maven
java-maven:
	@if ! command -v java >/dev/null 2>&1 || ! command -v mvn >/dev/null 2>&1; then \
	  if [ -n "$(APT_GET)" ]; then \
	    echo "Java or Maven missing: installing openjdk-17-jdk-headless and maven with apt-get ..."; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq openjdk-17-jdk-headless maven >/dev/null || { \
	      echo "error: apt-get could not install Java/Maven. Install Java 17+ and Maven 3.6+ yourself" \
	           "(Debian: apt-get install openjdk-17-jdk-headless maven), or set KAFKA_BOOTSTRAP to use your own broker."; exit 1; }; \
	  else \
	    echo "error: the local Kafka broker needs Java 17+ and Maven 3.6+ (java: $$(command -v java || echo missing)," \
	         "mvn: $$(command -v mvn || echo missing)). Install them, e.g. 'apt-get install openjdk-17-jdk-headless maven'."; exit 1; \
	  fi; \
	fi

# Prometheus and promtool (Debian's prometheus package) for the alert-rule tests and the integration tests' own
# server: installed with apt-get when missing and possible, else the exact command to run is printed. The package may
# start a system service; the tests never use it (they start their own server on a free port of 127.0.0.1).
.PHONY: prometheus
prometheus:
	@if ! command -v promtool >/dev/null 2>&1 || ! command -v prometheus >/dev/null 2>&1; then \
	  if [ -n "$(APT_GET)" ]; then \
	    echo "promtool or prometheus missing: installing Debian's prometheus package with apt-get ..."; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq prometheus >/dev/null || { \
	      echo "error: apt-get could not install prometheus. Install Prometheus 2.x and promtool yourself" \
	           "(Debian: apt-get install prometheus) and put both on PATH."; exit 1; }; \
	  else \
	    echo "error: the rule and integration tests need prometheus and promtool (prometheus: $$(command -v prometheus || echo missing)," \
	         "promtool: $$(command -v promtool || echo missing)). Install them, e.g. 'apt-get install prometheus'."; exit 1; \
	  fi; \
	fi

# Chromium (Debian's chromium package) for the report test, which renders the HTML report headless and checks the
# screenshot: installed with apt-get when missing and possible, else the exact command to run is printed.
.PHONY: chromium
chromium:
	@if ! command -v chromium >/dev/null 2>&1; then \
	  if [ -n "$(APT_GET)" ]; then \
	    echo "chromium missing: installing Debian's chromium package with apt-get ..."; \
	    $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium >/dev/null || { \
	      echo "error: apt-get could not install chromium. Install Chromium yourself" \
	           "(Debian: apt-get install chromium) and put the chromium binary on PATH."; exit 1; }; \
	  else \
	    echo "error: the report test needs chromium (chromium: $$(command -v chromium || echo missing))." \
	         "Install it, e.g. 'apt-get install chromium'."; exit 1; \
	  fi; \
	fi

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
