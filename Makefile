# One entry point for people and CI. `make up` deploys the dev stack; `make test` runs every check.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
CHECKOV_VENV := .venv-checkov
POLICY_VENV := policy/.venv
STACK ?= dev
PY := $(VENV)/bin/python

.PHONY: help system-packages venv checkov policy-venv tools up preview drift promote rollback manifests pictures check test test-tools e2e-tools e2e mutation clean

help:
	@echo "make up                   kind cluster, add-ons, build, deploy and verify the dev stack (needs Docker and Pulumi)"
	@echo "make tools                the pinned kind and kubectl into ./bin, each download checked against its sha256"
	@echo "make preview STACK=prod   the stack's plan, checked by the policy pack, after the preflight (cluster, prerequisites)"
	@echo "make drift STACK=prod     compare what the stack owns in its cluster with its state (changes nothing)"
	@echo "make promote              write the digest test runs into the later stages' files (ops/release/stages.txt)"
	@echo "make rollback STACK=prod  roll a stack back to its previous digest and verify it (ARGS='--to IMAGE@sha256:... --version X')"
	@echo "make manifests STACK=prod render a stack's Kubernetes objects to build/manifests/<stack> (review aid)"
	@echo "make pictures             draw each stack (components, objects, allowed flows) into docs/stacks/ (needs Graphviz)"
	@echo "make check                the tests that start no server (settings, render, policy, rules, lint): the quick loop"
	@echo "make test                 run every test (what CI runs)"
	@echo "make e2e                  the real Pulumi engine and provider against a local API server (root; builds e2e-tools)"
	@echo "make test-tools           build the tests' Go tools (Prometheus, Alertmanager of the chart's versions) into ~/.cache/real-estate-ai-gotools"
	@echo "make e2e-tools            build the e2e toolchain from Go modules into ~/.cache/real-estate-ai-gotools"
	@echo "make mutation             mutation-test the config contract (a report: slow; ARGS='--module settings/values.py --sample 50')"

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -r requirements-dev.txt
	touch $@

venv: $(VENV)/.installed

# checkov pins its own dependency versions, so it gets a virtualenv of its own.
$(CHECKOV_VENV)/.installed:
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet checkov==3.3.30
	touch $@

checkov: $(CHECKOV_VENV)/.installed

# The policy pack's own virtualenv (pulumi-policy pins protobuf 5; the program runs 6). PulumiPolicy.yaml names it.
$(POLICY_VENV)/.installed: policy/requirements.txt
	$(PYTHON) -m venv $(POLICY_VENV)
	$(POLICY_VENV)/bin/pip install --quiet --upgrade pip
	$(POLICY_VENV)/bin/pip install --quiet -r policy/requirements.txt
	touch $@

policy-venv: $(POLICY_VENV)/.installed

# Downloads verified against ops/toolchain/pins.txt before anything lands in ./bin (ops/toolchain/fetch.py).
TOOLS ?=
tools: venv
	$(PY) -m ops.toolchain.fetch $(TOOLS)

# Every step checks what it needs and says so (ops/release/up.py).
up: venv tools
	$(PY) -m ops.release.up --stack $(STACK)

# The credentials, the cluster and what it runs for the stack (ops/release/preflight.py), then the plan with the
# policy pack, shown and saved to build/plans/<stack>.json (ops/release/plan.py).
preview: venv policy-venv tools
	$(PY) -m ops.release.plan $(STACK)

drift: venv tools
	$(PY) -m ops.release.drift $(STACK)

promote: venv
	$(PY) -m ops.release.promote $(ARGS)

rollback: venv policy-venv tools
	$(PY) -m ops.release.rollback $(STACK) $(ARGS)

manifests: venv
	$(PY) -m tools.render --stack $(STACK)

# Each stack's picture, docs/stacks/<stack>.svg, drawn from its render (Graphviz); tests/test_picture.py fails when stale.
pictures: venv
	$(PY) -m tools.picture

# Tools built from Go modules (gotools/<tool>/go.mod) into a cache outside the repository, one per tool keyed by its files.
TEST_TOOLS := prometheus alertmanager blackbox promql-scope amconfig ksm-crs actionlint
E2E_TOOLS := etcd kube kwok pulumi kubernetes

test-tools:
	gotools/build.sh $(TEST_TOOLS)

TEST_ENV = GOTOOLS_BIN=$$(gotools/build.sh --check $(TEST_TOOLS)) CHECKOV=$(CHECKOV_VENV)/bin/checkov \
	  POLICY_PYTHON=$(POLICY_VENV)/bin/python

# The Debian packages the tests need, installed when missing (as root or through sudo), else named with the command.
system-packages:
	ops/toolchain/system-packages.sh

# The quick tier: every test not marked `server` (tests/services.py refuses a server to an unmarked test) or `slow`
# (the mutation sample). It installs nothing: a missing package is named with its command.
check: venv checkov policy-venv test-tools
	ops/toolchain/system-packages.sh --check
	$(TEST_ENV) $(VENV)/bin/pytest -m "not server and not slow" -n auto --dist worksteal $(ARGS)

test: system-packages venv checkov policy-venv test-tools
	$(TEST_ENV) $(VENV)/bin/pytest $(ARGS)

e2e-tools:
	gotools/build.sh $(E2E_TOOLS)

# The stack's life under the real engine and provider against a local control plane in a network namespace (root).
e2e: venv e2e-tools
	$(PY) -m e2e.run

# A report: every mutant runs its module's tests (2 889 mutants: about 1.5 h with 2 jobs, estimated from 1 387 in 46 min
# before the value operators); `make test` runs only a
# fixed sample against the edge tests (tests/test_mutation.py).
mutation: venv
	$(PY) -m tools.mutation $(ARGS)

clean:
	rm -rf build .pytest_cache
