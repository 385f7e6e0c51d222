#!/usr/bin/env bash
# Builds the Dockerfile's runtime stage for real and runs it, without a Docker daemon or a
# registry: podman (with runc) builds from a local Debian bookworm base made by debootstrap,
# takes the host-built binaries through BINARIES=prebuilt, starts the container with the
# model volume and the ops port published on 127.0.0.1, and checks from outside it that
# /ready and /health answer, that the HEALTHCHECK passes, that it runs as the non-root user,
# that OPENCLAW_ENV picks the config, that the bot runs the turn-taking models from the models
# volume (OPENCLAW_MODELS_DIR), that the image's fetch-turn-models works without Python and
# fails clearly with no network, and that SIGTERM stops it cleanly.
#
#   tests/container/test-container.sh       PROFILE=debug|release (default debug)
#
# Needs: podman, buildah's runc runtime, debootstrap (`make container-test` installs them),
# the host and plugins built, models/ggml-tiny.en.bin and the turn-taking models in the models
# cache (`make model`). The base image is made once and kept
# in podman's storage (localhost/openclaw-base:bookworm; its tarball is cached in
# $OPENCLAW_CONTAINER_CACHE, default /var/tmp/openclaw-voice-container). Network: the Debian
# mirror (DEBIAN_MIRROR) for the base and the runtime packages, 127.0.0.1 for the checks.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
profile="${PROFILE:-debug}"
cache="${OPENCLAW_CONTAINER_CACHE:-/var/tmp/openclaw-voice-container}"
mirror="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
base=localhost/openclaw-base:bookworm
image="localhost/openclaw-voice:test-$$"
name="openclaw-voice-test-$$"
work="$(mktemp -d)"
passed=0
failed=0

# This machine's runtime cannot set rlimits itself: runc, with explicit limits, for builds
# and runs alike.
cat >"$work/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$work/containers.conf"

dangling_before="$(podman images -q --filter dangling=true 2>/dev/null | sort)"
cleanup() {
    podman rm -f -t 5 "$name" >/dev/null 2>&1 || true
    podman rmi -f "$image" >/dev/null 2>&1 || true
    # The prebuilt-binaries stage this run left behind (nothing older).
    comm -13 <(echo "$dangling_before") <(podman images -q --filter dangling=true 2>/dev/null | sort) |
        xargs -r podman rmi -f >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL $*"; }
check() {
    local what="$1"; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
die() { echo "container test: $*" >&2; exit 1; }
# podman prints systemd-timer errors for health checks on machines without systemd; the
# test runs `podman healthcheck run` itself.
quiet() { grep -v 'systemd connection\|/run/systemd/private' || true; }

for tool in podman runc debootstrap curl; do
    command -v "$tool" >/dev/null || die "$tool is missing (make container-test installs it)"
done
bin_dir="$repo/target/$profile"
[ -x "$bin_dir/openclaw-voice" ] || die "no $bin_dir/openclaw-voice: build first (make test / make build)"
[ -f "$repo/models/ggml-tiny.en.bin" ] || "$repo/scripts/fetch-model" tiny.en || die "no model (make model)"
# The models volume: Whisper and the turn-taking models, as the fetch scripts would leave it.
turn_cache="${OPENCLAW_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openclaw-voice/models}"
"$repo/scripts/fetch-turn-models" "$turn_cache" >/dev/null || die "no turn models (make model)"
volume="$work/models"
mkdir -p "$volume"
for f in "$repo/models/ggml-tiny.en.bin" "$turn_cache"/{silero_vad.onnx,smart-turn-v3.2-cpu.onnx,libonnxruntime.so}; do
    cp -l "$f" "$volume/" 2>/dev/null || cp "$f" "$volume/" || die "cannot copy $f"
done

echo "== base image $base"
if podman image exists "$base"; then
    echo "   already in podman's storage"
else
    mkdir -p "$cache"
    if [ ! -s "$cache/bookworm-minbase.tar" ]; then
        echo "   debootstrap --variant=minbase bookworm ($mirror)"
        rootfs="$work/rootfs"
        debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
            { tail -20 "$work/debootstrap.log"; die "debootstrap failed"; }
        rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
        tar -C "$rootfs" -cf "$cache/bookworm-minbase.tar.tmp" . &&
            mv "$cache/bookworm-minbase.tar.tmp" "$cache/bookworm-minbase.tar"
        rm -rf "$rootfs"
    fi
    podman import "$cache/bookworm-minbase.tar" "$base" >"$work/import.log" 2>&1 ||
        { cat "$work/import.log"; die "podman import failed"; }
fi

echo "== build the runtime stage from the $profile binaries"
context="$work/context"
mkdir -p "$context/dist"
release="$(GZIP_LEVEL=1 "$repo/scripts/package" --profile "$profile" --no-tar --out "$context/dist")" ||
    die "scripts/package failed"
mv "$release" "$context/dist/release"
# Debug info is most of a debug build's size and none of what is tested here.
strip --strip-debug "$context/dist/release/bin/openclaw-voice" "$context/dist/release/plugins/"*.so
start=$SECONDS
if ! podman build --format docker --network host --file "$repo/Dockerfile" \
    --build-arg RUST_IMAGE="$base" --build-arg RUNTIME_IMAGE="$base" \
    --build-arg BINARIES=prebuilt --target runtime --tag "$image" "$context" \
    >"$work/build.log" 2>&1; then
    tail -30 "$work/build.log"
    die "podman build failed"
fi
ok "image built in $((SECONDS - start))s"
inspect() { podman image inspect "$image" --format "$1"; }
check "runs as the non-root user 10001" test "$(inspect '{{.Config.User}}')" = "10001:10001"
check "exposes 3001" sh -c "podman image inspect '$image' --format '{{json .Config.ExposedPorts}}' | grep -q '3001/tcp'"
check "has a HEALTHCHECK on /ready" sh -c "podman image inspect '$image' --format '{{json .Config.Healthcheck}}' | grep -q '/ready'"
check "binds the ops server to 0.0.0.0:3001" sh -c "podman image inspect '$image' --format '{{json .Config.Env}}' | grep -q 'OPENCLAW__OPS__BIND=0.0.0.0:3001'"
check "OPENCLAW_ENV defaults to production" sh -c "podman image inspect '$image' --format '{{json .Config.Env}}' | grep -q 'OPENCLAW_ENV=production'"
check "looks for models in the volume (OPENCLAW_MODELS_DIR=/app/models)" sh -c "podman image inspect '$image' --format '{{json .Config.Env}}' | grep -q 'OPENCLAW_MODELS_DIR=/app/models'"

echo "== fetch-turn-models in the image: no Python, no network"
podman run --rm --network none --read-only --tmpfs /tmp --entrypoint sh "$image" \
    -c 'for p in python3 python pip pip3; do command -v "$p" && exit 3; done; exit 0' 2>/dev/null
rc=$?
check "the image has no Python or pip (fetch-turn-models does without) (rc=$rc)" test "$rc" = 0
podman run --rm --network none --read-only --tmpfs /tmp --volume "$volume:/app/models:ro" \
    --entrypoint /app/scripts/fetch-turn-models "$image" >"$work/fetch-valid.log" 2>&1
check "a volume holding valid files: all three left alone (rc=$?)" \
    test "$(grep -c "already in place and valid" "$work/fetch-valid.log")" = 3
podman run --rm --network none --read-only --tmpfs /tmp --env PIP_INDEX_URL=http://127.0.0.1:9/simple \
    --entrypoint /app/scripts/fetch-turn-models "$image" /tmp/models 2>&1 | quiet >"$work/fetch-offline.log"
rc=${PIPESTATUS[0]}
sed 's/^/    | /' "$work/fetch-offline.log"
check "no network: it fails (rc=$rc)" test "$rc" != 0
check "  saying neither source is reachable and what to copy by hand" \
    grep -q "neither the official source nor PyPI.*libonnxruntime.so.* into /tmp/models by hand" "$work/fetch-offline.log"

echo "== run it: offline environment, headless, model volume, port on 127.0.0.1"
port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
podman run --detach --name "$name" \
    --env OPENCLAW_ENV=offline --env OPENCLAW__OPS__ENABLED=true \
    --volume "$volume:/app/models:ro" \
    --publish "127.0.0.1:$port:3001" \
    --read-only --tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges \
    "$image" 2>&1 | quiet >/dev/null
deadline=$((SECONDS + 90))
ready=""
while [ "$SECONDS" -lt "$deadline" ]; do
    ready="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/ready" || true)"
    [ "$ready" = 200 ] && break
    [ "$(podman inspect "$name" --format '{{.State.Running}}' 2>/dev/null)" = true ] || break
    sleep 1
done
check "/ready answers 200 from outside the container" test "$ready" = 200
health="$(curl -s --max-time 2 -w '\n%{http_code}' "$url/health" || true)"
check "/health answers 200" test "$(tail -1 <<<"$health")" = 200
check "/health: healthy" grep -q '"status":"healthy"' <<<"$health"
check "/health: OPENCLAW_ENV picked config/offline.toml" grep -q '"environment":"offline"' <<<"$health"
podman healthcheck run "$name" >/dev/null 2>&1
check "the image's HEALTHCHECK passes" test "$(podman inspect "$name" --format '{{.State.Health.Status}}')" = healthy
check "the process runs as uid 10001" test "$(podman exec "$name" id -u 2>/dev/null)" = 10001
check "/metrics answers" test "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url/metrics")" = 200
check "the bot runs ONNX Runtime from the models volume" sh -c \
    "podman exec '$name' grep -q ' /app/models/libonnxruntime.so' /proc/1/maps"
check "  with Silero VAD and Smart Turn, no fallback" sh -c \
    "podman exec '$name' /app/bin/openclaw-voice check-config 2>&1 | grep -q '^turn taking: Silero VAD, Smart Turn v3.2\$'"
podman stop --time 15 "$name" 2>&1 | quiet >/dev/null
check "SIGTERM: a clean exit (status 0)" test "$(podman inspect "$name" --format '{{.State.ExitCode}}')" = 0
if [ "$failed" -gt 0 ]; then
    echo "container log:"
    podman logs "$name" 2>&1 | tail -20 | sed 's/^/    /'
fi

echo
echo "container: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
