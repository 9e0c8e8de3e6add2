# netfilter.conntrack: the two commands of the README are `make demo` and `make test`.
# Both set up everything they need on a fresh Debian-like machine (run as root).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
DEMO_PLAYBOOK ?= playbooks/site.yml
LAB_HOSTS ?= 3

.PHONY: help setup demo test unit sanity lint integration bench lab-up lab-down clean

help:
	@echo "make demo   - set up, build a $(LAB_HOSTS)-host namespace lab, run $(DEMO_PLAYBOOK), tear the lab down"
	@echo "make test   - set up, then unit tests, ansible-test sanity, ansible-lint, integration tests (real kernel)"
	@echo "make lab-up / lab-down - keep a lab (lab/inventory.ini) for ad-hoc use; make bench - benchmarks"

setup:
	scripts/setup

demo: setup
	scripts/demo "$(DEMO_PLAYBOOK)" "$(LAB_HOSTS)"

test: setup
	$(MAKE) --no-print-directory unit sanity lint integration

unit:
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

sanity:
	scripts/sanity

lint:
	$(VENV)/bin/ansible-lint --profile production --offline

integration:
	$(PY) -m pytest -q -p no:cacheprovider tests/integration

bench: setup
	bench/run

lab-up: setup
	$(PY) tests/lab/lab.py up $(LAB_HOSTS) --prefix ctlab
	@echo "lab ready: $(VENV)/bin/ansible all -m netfilter.conntrack.conntrack_info"

lab-down:
	$(PY) tests/lab/lab.py down --prefix ctlab

clean: lab-down
	rm -rf build .collections tests/output
