# Two commands for a newcomer: `make quickstart` and `make test`. Each sets up what it needs
# (a virtual environment, Fashion-MNIST from Debian's packages) and is quick once set up.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
# contract/datasets.py's DEFAULT_DATA_ROOTS["fashion_mnist"], written out: make cannot import Python,
# and `data` runs before the virtual environment exists. Change both together.
FASHION_MNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: quickstart test test-fast stress cluster-test setup data tools

quickstart: setup
	$(VENV)/bin/monosweep run examples/quickstart.yaml

test: setup tools
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# The inner loop: ruff, then every test not marked slow (no sweep through Ray, no service
# process); `make test` runs these and the slow ones.
test-fast: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest -m "not slow and not cluster" $(PYTEST_ARGS)

# The fault and signal tests, ROUNDS times with BUSY CPU-bound loops beside them: failures per test.
ROUNDS ?= 5
BUSY ?= 2
stress: setup
	$(VENV)/bin/python -m tests.stress --rounds $(ROUNDS) --busy $(BUSY) \
	  tests/test_operations.py tests/test_reliability.py tests/test_signals.py

# docker/ for real (tests/test_docker_stack.py, docker/README.md): starts dockerd if none runs
# (as root), builds the images, runs the compose stack and two sweeps on it; the last line
# is what it asserted.
cluster-test: setup
	@rm -f /tmp/monosweep-cluster-test.txt  # the summary the test writes last
	$(VENV)/bin/python -m pytest -m cluster -p no:cacheprovider -rs --basetemp=/tmp/monosweep-cluster-test tests/test_docker_stack.py $(PYTEST_ARGS)
	@cat /tmp/monosweep-cluster-test.txt 2> /dev/null || true

setup: $(STAMP) data

# pip takes torch and torchvision from this machine's disk where a cap in /etc/xdg/pip says so.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

data:
	@[ -d $(FASHION_MNIST) ] || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q dataset-fashion-mnist; }

# What tests/test_cluster.py uses (it skips without them), so that `make test` runs the suite CI
# runs: PostgreSQL's server binaries (the test starts a private server on a free loopback port)
# and a compose validator (Debian's docker-compose; `docker compose config` needs no engine).
tools:
	@missing=; \
	ls /usr/lib/postgresql/*/bin/initdb > /dev/null 2>&1 || missing="$$missing postgresql"; \
	{ docker compose version > /dev/null 2>&1 || command -v docker-compose > /dev/null; } || missing="$$missing docker-compose"; \
	[ -z "$$missing" ] || { $(SUDO) apt-get update -q && \
	  $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing; }
