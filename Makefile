# OpenClaw Voice — build, demo and test entry points. Every target installs what it needs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

CARGO ?= cargo
MODEL ?= tiny.en
# A local directory holding ggml-<model>.bin, used instead of downloading. The shared
# models directory beside a checkout is picked up automatically when present.
MODEL_MIRROR ?= $(shell [ -f ../shared/models/ggml-$(MODEL).bin ] && echo ../shared/models)
export MODEL_MIRROR

APT_PACKAGES := cmake clang libclang-dev pkg-config espeak-ng sox
RELEASE_PACKAGES := -p openclaw-voice -p openclaw-plugin-local-whisper -p openclaw-plugin-espeak -p openclaw-plugin-tone
QUESTION ?=
OUT ?= out

.PHONY: help deps model build demo test lint fmt clippy ci bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-8s %s\n", $$1, $$2}'

deps: ## Install the Debian packages the build and tests need (only those missing)
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

model: ## Fetch the Whisper model (MODEL=tiny.en; MODEL_MIRROR=dir copies instead of downloading)
	@scripts/fetch-model $(MODEL)

build: deps ## Release build of the host and the bundled plugins
	$(CARGO) build --release $(RELEASE_PACKAGES)

demo: build model ## The main job: a spoken question in, a spoken answer out, fully offline
	@mkdir -p $(OUT)
	@if [ -n "$(QUESTION)" ]; then cp "$(QUESTION)" $(OUT)/question.wav; \
	else espeak-ng -s 160 -w $(OUT)/question.wav "What is the weather like in Paris today?"; \
	     echo "made a sample question with espeak-ng: $(OUT)/question.wav"; fi
	./target/release/openclaw-voice --env offline simulate --input $(OUT)/question.wav --speaker you --output $(OUT)/reply.wav

test: deps model ## The whole test suite (builds the plugin libraries the tests load)
	$(CARGO) build --workspace
	$(CARGO) test --workspace

fmt: ## Format the code
	$(CARGO) fmt --all

lint: ## Formatting and clippy, warnings as errors
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

ci: lint test ## What .ci/run runs

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

dist: ## Release tarball of host + plugins + config + deploy files, and SHA256SUMS, in dist/
	@[ "$(PROFILE)" != release ] || $(MAKE) --no-print-directory build
	scripts/package --profile $(PROFILE)

deploy-test: deps model ## deploy.sh and rollback.sh on loopback: healthy, pre-flight refusal, automatic and manual rollback
	$(CARGO) build --workspace
	PROFILE=debug tests/deploy/test-deploy-rollback.sh
