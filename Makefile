# OpenClaw Voice — build, demo and test entry points. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
MODEL ?= tiny.en
# A local directory holding ggml-<model>.bin, used instead of downloading. The shared
# models directory beside a checkout is picked up automatically when present.
MODEL_MIRROR ?= $(shell [ -f ../shared/models/ggml-$(MODEL).bin ] && echo ../shared/models)
export MODEL_MIRROR

APT_PACKAGES := cmake clang libclang-dev pkg-config espeak-ng sox python3-pip flite postgresql curl
RELEASE_PACKAGES := -p openclaw-voice -p openclaw-plugin-local-whisper -p openclaw-plugin-espeak -p openclaw-plugin-piper -p openclaw-plugin-tone \
	-p openclaw-plugin-openai-whisper -p openclaw-plugin-elevenlabs -p openclaw-plugin-openai-tts
QUESTION ?=
OUT ?= out

.PHONY: help deps model build demo test lint fmt clippy ci bench clean monitoring-check k8s-check moto wyoming drill semver-check
RULE_FILES := deploy/prometheus/alerts.yml deploy/prometheus/slo.yml

help: ## List the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## Install the Debian packages the build and tests need (only those missing)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

model: ## Fetch the Whisper model (MODEL=tiny.en; MODEL_MIRROR=dir copies), the turn-taking models and the Piper test voice
	@scripts/fetch-model $(MODEL)
	@scripts/fetch-turn-models
	@scripts/fetch-piper-voice --voice en_US-joe-medium

build: deps ## Release build of the host and the bundled plugins
	$(CARGO) build --release $(RELEASE_PACKAGES)

demo: build model ## The main job: a spoken question in, a spoken answer out, fully offline
	@mkdir -p $(OUT)
	@if [ -n "$(QUESTION)" ]; then cp "$(QUESTION)" $(OUT)/question.wav; \
	else espeak-ng -s 160 -w $(OUT)/question.wav "What is the weather like in Paris today?"; \
	     echo "made a sample question with espeak-ng: $(OUT)/question.wav"; fi
	./target/release/openclaw-voice --env offline simulate --input $(OUT)/question.wav --speaker you --output $(OUT)/reply.wav

# moto_server (PyPI moto[server]): the local CloudWatch Logs API the log-sink tests run against
# (tests/src/moto.rs finds it in target/moto-venv, or on PATH, or in $$MOTO_SERVER).
MOTO_VERSION ?= 5.2.1
MOTO_VENV := target/moto-venv

moto: ## Install moto_server into target/moto-venv (unless it is on PATH)
	@command -v moto_server >/dev/null || [ -x $(MOTO_VENV)/bin/moto_server ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  python3 -c 'import ensurepip' 2>/dev/null || { echo "installing: python3-venv"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends python3-venv; }; \
	  echo "installing: moto[server]==$(MOTO_VERSION) into $(MOTO_VENV)"; \
	  python3 -m venv $(MOTO_VENV) && $(MOTO_VENV)/bin/pip install -q 'moto[server]==$(MOTO_VERSION)'; }

# The real Wyoming peers the `wyoming` plugin and `wyoming serve` are tested against: the
# wyoming-faster-whisper server and the `wyoming` client library (PyPI), in target/wyoming-venv,
# with faster-whisper's tiny.en in the models cache.
WYOMING_FASTER_WHISPER_VERSION ?= 3.8.1
WYOMING_VENV := target/wyoming-venv

wyoming: ## Install wyoming-faster-whisper and the wyoming client into target/wyoming-venv, fetch its model
	@[ -x $(WYOMING_VENV)/bin/wyoming-faster-whisper ] || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  python3 -c 'import ensurepip' 2>/dev/null || { echo "installing: python3-venv"; \
	    $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends python3-venv; }; \
	  echo "installing: wyoming-faster-whisper==$(WYOMING_FASTER_WHISPER_VERSION) into $(WYOMING_VENV)"; \
	  python3 -m venv $(WYOMING_VENV) && $(WYOMING_VENV)/bin/pip install -q 'wyoming-faster-whisper==$(WYOMING_FASTER_WHISPER_VERSION)'; }
	@scripts/fetch-faster-whisper-model

test: deps model moto wyoming ## The whole test suite (builds the plugin libraries the tests load)
	$(CARGO) build --workspace
	$(CARGO) test --workspace

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Formatting, clippy (warnings as errors) and the layering rule (scripts/check-layers)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	scripts/check-layers

SEMVER_CHECKS_VERSION ?= 0.51.0

semver-check: ## plugin-api against 0.1.0 as released (tests/compat): no change that breaks a built plugin
	@command -v cargo-semver-checks >/dev/null || { \
	  echo "installing: cargo-semver-checks $(SEMVER_CHECKS_VERSION) (crates.io)"; \
	  $(CARGO) install -q cargo-semver-checks --locked --version $(SEMVER_CHECKS_VERSION); }
	$(CARGO) semver-checks check-release --manifest-path plugin-api/Cargo.toml \
	  --baseline-root tests/compat/plugin-api-0.1.0

monitoring-check: ## Check and unit-test the alert and SLO rules, lint a real /metrics scrape with promtool
	@command -v promtool >/dev/null || { \
	  echo "installing: prometheus (for promtool)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus; }
	promtool check rules $(RULE_FILES)
	promtool test rules deploy/prometheus/tests/*.yml
	scripts/check-alert-rules $(RULE_FILES)
	$(CARGO) build -p openclaw-voice -p openclaw-test-plugin-fault
	OPENCLAW_TEST_REQUIRE_PROMTOOL=1 $(CARGO) test -p openclaw-voice-tests --test ops -- metrics_after_a_simulated_turn monitoring_assets


KUBERNETES_VALIDATE_VERSION ?= 1.37.0

k8s-check: ## Render the Kubernetes overlays and validate every manifest offline (schemas + cluster rules)
	@python3 -c 'import kubernetes_validate, yaml' 2>/dev/null || { \
	  echo "installing: kubernetes-validate $(KUBERNETES_VALIDATE_VERSION) (PyPI; bundles the Kubernetes schemas)"; \
	  python3 -m pip install -q kubernetes-validate==$(KUBERNETES_VALIDATE_VERSION) pyyaml; }
	scripts/k8s-check $(if $(wildcard target/debug/openclaw-voice),--binary target/debug/openclaw-voice)

DRILL_PACKAGES := prometheus curl python3 sox

drill: ## Incident drill on loopback: real Prometheus, provider outage, alert fires and resolves
	@missing=""; for p in $(DRILL_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(CARGO) build -p openclaw-voice -p openclaw-test-plugin-fault
	scripts/drill

ci: lint test monitoring-check k8s-check drill ## What .ci/run runs

bench: build model ## Run the benchmarks (see docs/BENCHMARKS.md)
	$(CARGO) bench --workspace

clean: ## Remove build output
	$(CARGO) clean

# ---- Delivery: releases, packaging, deploy, container, coverage (docs/DEPLOYMENT.md) ----
.PHONY: release release-test

release: ## Cut a release: version from commits, changelog, tag (ARGS=--dry-run; scripts/release -h)
	scripts/release $(ARGS)

release-test: ## scripts/release on a scratch repository (needs git-cliff)
	@command -v git-cliff >/dev/null || pip install -q git-cliff
	tests/release/test-release.sh

.PHONY: dist deploy-test
PROFILE ?= release

dist: deps ## Release tarball of host + plugins + config + deploy files, and SHA256SUMS, in dist/
	scripts/package --build --profile $(PROFILE)

deploy-test: deps model ## deploy.sh and rollback.sh on loopback: healthy, pre-flight refusal, automatic and manual rollback
	$(CARGO) build --workspace
	PROFILE=debug tests/deploy/test-deploy-rollback.sh

.PHONY: container container-test
CONTAINER_PACKAGES := podman buildah runc debootstrap uidmap fuse-overlayfs slirp4netns curl
IMAGE ?= openclaw-voice:local

container: ## Build the image from source with docker or podman (IMAGE=openclaw-voice:local)
	$$(command -v docker >/dev/null && docker info >/dev/null 2>&1 && echo docker || echo podman) build -t $(IMAGE) .

container-test: deps model ## Build the runtime image from a debootstrap base with podman, run it, check /ready and /health
	@missing=""; for p in $(CONTAINER_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	$(CARGO) build --workspace
	PROFILE=debug tests/container/test-container.sh

.PHONY: coverage lint-delivery publish-check
COVERAGE_MIN ?= 85
CARGO_LLVM_COV_VERSION ?= 0.9.1
# Test support code (the tests crate, fault plugins, benches) is not product code.
COVERAGE_IGNORE := --ignore-filename-regex '(^|/)(tests|benches)/'

coverage: deps model ## Line coverage of `make test` (cargo-llvm-cov, report in out/); fails under 85% lines
	@command -v cargo-llvm-cov >/dev/null || $(CARGO) install cargo-llvm-cov --locked --version $(CARGO_LLVM_COV_VERSION)
	@rustup component list --installed | grep -q '^llvm-tools' || rustup component add llvm-tools-preview
	@mkdir -p $(OUT)
	set -euo pipefail; source <(cargo llvm-cov show-env --export-prefix); \
	cargo llvm-cov clean --workspace; \
	$(CARGO) build --workspace; \
	$(CARGO) test --workspace; \
	cargo llvm-cov report --lcov --output-path $(OUT)/lcov.info $(COVERAGE_IGNORE); \
	cargo llvm-cov report --summary-only $(COVERAGE_IGNORE) | tee $(OUT)/coverage.txt; \
	cargo llvm-cov report --summary-only --fail-under-lines $(COVERAGE_MIN) $(COVERAGE_IGNORE) >/dev/null

lint-delivery: ## Lint workflows, Dockerfile, compose file, shell scripts, systemd unit, .env.example
	scripts/lint-delivery

publish-check: ## What `cargo publish` of plugin-api would upload, built from the packaged crate
	$(CARGO) publish --dry-run --allow-dirty -p openclaw-plugin-api

.PHONY: deny
CARGO_DENY_VERSION ?= 0.20.2

deny: ## Dependency policy (deny.toml): licenses, bans, sources; advisories run in GitHub Actions
	@command -v cargo-deny >/dev/null || $(CARGO) install cargo-deny --locked --version $(CARGO_DENY_VERSION)
	cargo deny --all-features check licenses bans sources

# Tests that need the Whisper model read OPENCLAW_TEST_MODEL; point it at the copy `make model`
# puts in models/, so `make test` and `make coverage` work without a ../shared checkout layout.
export OPENCLAW_TEST_MODEL ?= $(CURDIR)/models/ggml-$(MODEL).bin
