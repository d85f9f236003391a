# Two commands for a newcomer: `make quickstart` and `make test`. Each sets up what it needs
# (a virtual environment, Fashion-MNIST from Debian's packages) and is quick once set up.
VENV ?= .venv
PYTHON ?= python3
STAMP := $(VENV)/.installed
FASHION_MNIST := /usr/share/datasets/fashion-mnist
SUDO := $(shell [ "$$(id -u)" -eq 0 ] || echo sudo)
PYTEST_ARGS ?=

.PHONY: quickstart test cluster-test setup data

quickstart: setup
	$(VENV)/bin/monosweep run examples/quickstart.yaml

test: setup
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

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
