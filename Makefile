# Every target installs what it needs from the locks first; only python3.11 is assumed.
# requirements.lock: the runtime, what the images install. requirements-dev.lock: the same pins
# plus the development tools (tests, linters, loopback servers); `make lock` writes both.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
HOST ?= 127.0.0.1
PORT ?= 3000
# Where the +cpu torch comes from when pip's configured sources lack it; `make lock` records it.
TORCH_INDEX := https://download.pytorch.org/whl/cpu
# The images' Dockerfiles: hadolint lints them in every lint step (its binary comes in the lock).
DOCKERFILES := deployments/docker/Dockerfile deployments/docker/Dockerfile.trainer
# How `make lock-gpu` asks pip for torch's CUDA build. --isolated: pip's default index, with no
# configured folder of +cpu wheels (a +cpu wheel satisfies torch==X too and would win). Behind a
# mirror: make lock-gpu GPU_PIP_OPTIONS="--isolated --index-url <mirror>/simple"
GPU_PIP_OPTIONS ?= --isolated

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home
export DAGSTER_DEPLOYMENT ?= local

.PHONY: venv prepare dev run-day test test-fast test-adapt goldens demo lint audit lock lock-gpu clean

# Exact versions, no resolution: --no-deps installs what the lock names and nothing else, so
# no transitive upgrade (or CUDA torch) can sneak in; pip check proves the set is consistent.
# The installer takes the +cpu torch as pip is configured (local wheel, mirror) and, only where
# that has none, from the lock's "# torch-index:" for torch alone.
$(VENV)/.installed: requirements.lock requirements-dev.lock scripts/install_lock.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) scripts/install_lock.py requirements.lock
	$(PY) scripts/install_lock.py requirements-dev.lock
	$(PY) -m pip check
	touch $@

venv: $(VENV)/.installed

prepare: venv
	$(PY) -m scripts.prepare_local

dev: prepare
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

# One day of the loop without the UI, on the same instance and resources as `make dev`: the
# features of the WINDOW days ending at DAY (default: the training window), then DAY's
# training job; one line per asset, exit status 1 on a refusal. CONFIG: the training job's
# run config as YAML. make run-day DAY=2026-11-04 [WINDOW=7] [CONFIG=run_config.yaml]
run-day: prepare
	$(PY) -m scripts.run_day --day "$(DAY)" $(if $(WINDOW),--window $(WINDOW)) \
	  $(if $(CONFIG),--config "$(CONFIG)")

# Two workers, each test file on one of them (a module's fixtures are built once): most slow
# tests wait on real daemons and subprocesses, so two run at once on a two-core machine.
# TEST_WORKERS=0 runs the suite in this one process.
TEST_WORKERS ?= 2
test: venv
	$(BIN)/ruff check .
	$(BIN)/hadolint $(DOCKERFILES)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile

# The inner loop: everything but the tests marked slow (real daemon/webserver, trainer
# subprocesses, torchrun, benchmarks). CI and `make test` run them all.
test-fast: venv
	$(BIN)/ruff check .
	$(BIN)/hadolint $(DOCKERFILES)
	$(PY) -m pytest -m "not slow"

# The machinery on a second upstream schema that lives only under tests/adapt/ (another table,
# key, kinds and label, a timestamp and no date column), and one whole day of the loop on it
# through to a promoted first model: what a team adapting the template relies on.
test-adapt: venv
	$(PY) -m pytest tests/adapt

# After an intended change of the example's feature output: rewrite the golden digests that
# tests/example/ pins (one per table and per column), then bump FEATURE_CODE_VERSION.
goldens: venv
	$(PY) -m tests.example.goldens

demo: prepare
	$(PY) -m scripts.demo

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint $(DOCKERFILES)

# Least privilege and supply chain: the policy, manifest and grant audits (also part of `make
# test`), the enforcement tests on loopback S3 and the real PostgreSQL, then the runtime lock
# (what the images ship) against known vulnerabilities. pip-audit asks the PyPA advisory
# database over the network, so it runs here and never in the test suite; it lives in its own
# tool venv, outside both locks, so the project environment stays exactly the locked one.
# --strict: a package the advisory service cannot look up fails the audit instead of passing
# silently; torch is looked up as its upstream version (advisories never name the +cpu label).
PIP_AUDIT := pip-audit==2.10.1
AUDIT_TESTS := tests/deployments/test_least_privilege.py tests/deployments/test_iam_enforcement.py \
	tests/deployments/test_warehouse_readonly_role.py
audit: venv
	$(PY) -m pytest -q $(AUDIT_TESTS)
	test -x .venv-audit/bin/pip-audit || ( $(PYTHON) -m venv .venv-audit && \
	  .venv-audit/bin/python -m pip install --quiet "$(PIP_AUDIT)" )
	sed 's/+cpu$$//' requirements.lock > .venv-audit/runtime.txt
	.venv-audit/bin/pip-audit --requirement .venv-audit/runtime.txt --no-deps --disable-pip \
	  --strict --progress-spinner off

# Re-resolve pyproject's ranges in a scratch venv and pin the result. torch goes first from the
# CPU wheel, through the same installer and fallback as the venv, so that nothing resolves the
# multi-GB CUDA build; the lock records TORCH_INDEX for the next install. Runtime and dev
# dependencies resolve together, so shared packages get one version; scripts/split_lock.py then
# writes the runtime closure (requirements.lock) and the whole set (requirements-dev.lock).
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	printf '# torch-index: %s\ntorch==2.13.0+cpu\n' "$(TORCH_INDEX)" > .venv-lock/torch.lock
	.venv-lock/bin/python scripts/install_lock.py .venv-lock/torch.lock
	.venv-lock/bin/python -c 'import tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; print("\n".join(p["dependencies"] + p["optional-dependencies"]["dev"]))' > .venv-lock/requirements.in
	.venv-lock/bin/python -m pip install --quiet -r .venv-lock/requirements.in
	( echo "# Generated by 'make lock' from pyproject.toml; installed with --no-deps. Do not edit."; \
	  echo "# torch-index: $(TORCH_INDEX)"; \
	  .venv-lock/bin/python -m pip freeze --all --exclude pip ) > .venv-lock/full.lock
	.venv-lock/bin/python scripts/split_lock.py .venv-lock/full.lock requirements.lock requirements-dev.lock
	rm -rf .venv-lock
	$(MAKE) lock-gpu

# The GPU trainer image's lock (deployments/docker/Dockerfile.trainer): the runtime lock with
# torch's CUDA build of the same version (PyPI's default Linux wheel) and the nvidia-*/cuda-*/
# triton packages it needs; every other pin held to the CPU lock's by -c. pip resolves without
# installing (--dry-run --report), though pip 23.2 still downloads each wheel to read its
# metadata (about 3 GB, nothing kept): this needs the network, like `make lock`.
lock-gpu:
	rm -rf .venv-lock-gpu
	$(PYTHON) -m venv .venv-lock-gpu
	grep -v -e '^#' -e '^torch==' requirements.lock > .venv-lock-gpu/constraints.txt
	.venv-lock-gpu/bin/python -m pip install $(GPU_PIP_OPTIONS) --quiet --dry-run \
	  --ignore-installed --report .venv-lock-gpu/report.json \
	  -c .venv-lock-gpu/constraints.txt \
	  "torch==$$(sed -n 's/^torch==\([^+]*\).*/\1/p' requirements.lock)"
	.venv-lock-gpu/bin/python scripts/gpu_lock.py requirements.lock .venv-lock-gpu/report.json \
	  > requirements-gpu.lock
	rm -rf .venv-lock-gpu

clean:
	rm -rf $(VENV) .venv-audit .dagster_home .local .pytest_cache
