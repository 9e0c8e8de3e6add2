# netfilter.conntrack: the two commands of the README are `make demo` and `make test`.
# Both set up everything they need on a fresh Debian-like machine (run as root).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
VENV := $(CURDIR)/.venv
PY := $(VENV)/bin/python
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
DEMO_PLAYBOOK ?= playbooks/site.yml
LAB_HOSTS ?= 3

.PHONY: help setup demo test unit units sanity lint changelog changelog-lint artifact integration bench lab-up lab-down clean

help:
	@echo "make demo   - set up, build a $(LAB_HOSTS)-host namespace lab, run $(DEMO_PLAYBOOK), tear the lab down"
	@echo "make test   - set up, then unit tests, ansible-test sanity and units, ansible-lint, the changelog lint,"
	@echo "              the built artifact (install, ansible-doc, smoke playbook, links, ansible-builder), integration tests"
	@echo "make changelog - (re)generate CHANGELOG.rst for version $(VERSION) from changelogs/fragments"
	@echo "make lab-up / lab-down - keep a lab (lab/inventory.ini) for ad-hoc use; make bench - benchmarks"

setup:
	scripts/setup

demo: setup
	scripts/demo "$(DEMO_PLAYBOOK)" "$(LAB_HOSTS)"

test: setup
	$(MAKE) --no-print-directory unit sanity units lint changelog-lint artifact integration

unit:
	$(PY) -m pytest -q -p no:cacheprovider tests/unit

# ansible-test units on the oldest and newest target Python found (3.8-3.13)
units:
	scripts/units

sanity:
	scripts/sanity

lint:
	$(VENV)/bin/ansible-lint --profile production --offline

# Release notes: antsibull-changelog merges every fragment into the $(VERSION) release (again, so fragments
# added or edited later are picked up) and writes CHANGELOG.rst.
changelog:
	PATH="$(VENV)/bin:$$PATH" ANSIBLE_COLLECTIONS_PATH= $(VENV)/bin/antsibull-changelog release \
	    --version $(VERSION) --update-existing --refresh-fragments

changelog-lint:
	$(VENV)/bin/antsibull-changelog lint
	$(VENV)/bin/antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml

# The collection as users get it: build, install into an empty path, ansible-doc, smoke playbook, links,
# execution-environment files (tests/artifact)
artifact:
	$(PY) -m pytest -q -p no:cacheprovider tests/artifact

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
	rm -rf build .collections tests/output .hypothesis
