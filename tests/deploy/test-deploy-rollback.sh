#!/usr/bin/env bash
# deploy/deploy.sh and deploy/rollback.sh for real, on loopback, with the built host and
# plugins packed by scripts/package and a plain process standing in for systemd
# (tests/deploy/supervisor.sh):
#
#   1. deploy release A (healthy)                 → /ready and /health answer 200; without the
#      turn-taking models, the pre-flight says so and names the command that fetches them
#   2. deploy B1, whose config names a missing plugin → pre-flight refuses, A keeps serving
#   3. deploy B2, whose config turns the ops server off → never ready → the script rolls back
#      to A by itself within 60 s (exit 3), and A answers healthy
#   4. the release's fetch-turn-models puts the turn models in shared/models, deploy C
#      (healthy)                                  → C runs Silero and Smart Turn from there,
#      current C, previous A, old releases pruned
#   5. rollback.sh → A; rollback.sh 0.9.2 → C; rollback.sh to the broken B2 → back on C (exit 3)
#   6. a second deploy waits for the first (lock)
#
#   tests/deploy/test-deploy-rollback.sh      PROFILE=debug|release (default debug): which
#                                             target/<profile>/ build to pack
# Needs the host and plugins built (`make test` or `make build` does), models/ggml-tiny.en.bin
# and the turn-taking models in the models cache (`make model`). Only 127.0.0.1 is used.
# Bounded: every wait has a timeout.
set -uo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
profile="${PROFILE:-debug}"
work="$(mktemp -d)"
root="$work/root"
supervisor="$repo/tests/deploy/supervisor.sh"
deploy="$repo/deploy/deploy.sh"
rollback="$repo/deploy/rollback.sh"
passed=0
failed=0

cleanup() {
    OPENCLAW_ROOT="$root" "$supervisor" stop 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ok() { passed=$((passed + 1)); echo "ok   $*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL $*"; }
check() {
    local what="$1"; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
code() { curl -s -o /dev/null -w '%{http_code}' --max-time 3 "$url$1" || true; }
healthy() { [ "$(code /ready)" = 200 ] && [ "$(code /health)" = 200 ]; }
current() { basename "$(readlink "$root/current" 2>/dev/null || echo none)"; }
previous() { basename "$(readlink "$root/previous" 2>/dev/null || echo none)"; }
# The release directory the running service was started from.
serving() {
    local pid
    pid="$(cat "$root/supervisor/pid" 2>/dev/null)" || { echo none; return; }
    basename "$(readlink "/proc/$pid/cwd" 2>/dev/null || echo none)"
}
run_deploy() { # run_deploy LOGNAME args... ; sets rc and took
    local name="$1"; shift
    local start=$SECONDS
    "$deploy" "${common[@]}" "$@" >"$work/$name.log" 2>&1
    rc=$?
    took=$((SECONDS - start))
    sed 's/^/    | /' "$work/$name.log"
}
run_rollback() {
    local name="$1"; shift
    "$rollback" "${common[@]}" "$@" >"$work/$name.log" 2>&1
    rc=$?
    sed 's/^/    | /' "$work/$name.log"
}

bin_dir="$repo/target/$profile"
[ -x "$bin_dir/openclaw-voice" ] || { echo "no $bin_dir/openclaw-voice: build first (make test / make build)"; exit 1; }
model="$repo/models/ggml-tiny.en.bin"
[ -f "$model" ] || "$repo/scripts/fetch-model" tiny.en || { echo "no model: make model"; exit 1; }
command -v curl >/dev/null || { echo "curl is needed"; exit 1; }
turn_cache="${OPENCLAW_MODELS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/openclaw-voice/models}"
"$repo/scripts/fetch-turn-models" "$turn_cache" >/dev/null || { echo "no turn models: make model"; exit 1; }
# The service finds the turn models only where the unit says (no cache to fall back on).
unset OPENCLAW_MODELS_DIR
export XDG_CACHE_HOME="$work/no-cache"

port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
url="http://127.0.0.1:$port"
env_file="$work/openclaw-voice.env"
echo "OPENCLAW_ENV=deploytest" >"$env_file"
common=(--root "$root" --env-file "$env_file" --url "$url" --supervisor "$supervisor" --keep 2)

# An environment of the test's own, as an operator would ship one: offline providers,
# headless, the ops server on the test's port.
deploytest_config() {
    cat <<EOF
[stt]
providers = ["local-whisper"]

[tts]
providers = ["espeak"]

[agent]
kind = "echo"

[ops]
enabled = ${1:-true}
bind = "127.0.0.1:$port"
shutdown_deadline_ms = 1000

[discord]
enabled = false
EOF
}

echo "== pack release A ($profile build)"
tarball="$(GZIP_LEVEL=1 "$repo/scripts/package" --profile "$profile" --version 0.9.0 --out "$work/dist" --no-tar)" || exit 1
deploytest_config >"$tarball/config/deploytest.toml"
(cd "$work/dist" &&
    tar -cf - openclaw-voice-0.9.0-*-linux | gzip -1 >release-a.tar.gz &&
    sha256sum release-a.tar.gz >SHA256SUMS)
stage_a="$tarball"
mkdir -p "$root/shared/models"
ln -s "$model" "$root/shared/models/ggml-tiny.en.bin"

# Variants of A, as directories: another version, another config.
variant() { # variant NAME VERSION -> prints its directory
    local dir="$work/dist/$1"
    cp -a "$stage_a" "$dir"
    echo "$2" >"$dir/VERSION"
    echo "$dir"
}

echo "== 1. deploy A (healthy)"
echo "corrupt" >"$work/dist/bad.tar.gz"
(cd "$work/dist" && sha256sum bad.tar.gz >>SHA256SUMS)
echo "tampered" >>"$work/dist/bad.tar.gz"
run_deploy bad --checksums "$work/dist/SHA256SUMS" "$work/dist/bad.tar.gz"
check "a tarball that fails its checksum is refused (rc=$rc)" test "$rc" = 1
check "  and says why" grep -q "checksum mismatch" "$work/bad.log"
check "  nothing installed" test ! -e "$root/current"
run_deploy a --timeout 60 --checksums "$work/dist/SHA256SUMS" "$work/dist/release-a.tar.gz"
check "deploy A exits 0 (rc=$rc, ${took}s)" test "$rc" = 0
check "checksum verified" grep -q "checksum verified" "$work/a.log"
check "current → 0.9.0" test "$(current)" = 0.9.0
check "A answers /ready and /health" healthy
check "the service runs from releases/0.9.0" test "$(serving)" = 0.9.0
check "models linked into the release" test -f "$root/releases/0.9.0/models/ggml-tiny.en.bin"
check "the release ships scripts/fetch-model and scripts/fetch-turn-models" \
    test -x "$root/releases/0.9.0/scripts/fetch-model" -a -x "$root/releases/0.9.0/scripts/fetch-turn-models"
check "no turn models: the pre-flight says the energy gate runs" \
    grep -q "pre-flight: turn taking: energy gate" "$work/a.log"
check "  and names the command that fetches them" \
    grep -qF "pre-flight: to fetch them: $root/releases/0.9.0/scripts/fetch-turn-models $root/shared/models" "$work/a.log"
check "deploy.log records it" grep -q "deployed 0.9.0" "$root/deploy.log"
pid_a="$(cat "$root/supervisor/pid")"

echo "== 2. deploy B1: config names a plugin that is not there → pre-flight refuses"
b1="$(variant b1 0.9.1-b1)"
cat >>"$b1/config/deploytest.toml" <<'EOF'

[providers.speech-cloud]
plugin = "no-such-plugin"
timeout_ms = 1000
EOF
sed -i 's/^providers = \["espeak"\]/providers = ["speech-cloud"]/' "$b1/config/deploytest.toml"
run_deploy b1 --timeout 30 "$b1"
check "pre-flight failure exits 2 (rc=$rc)" test "$rc" = 2
check "  names the missing plugin" grep -q "no-such-plugin" "$work/b1.log"
check "  current still 0.9.0" test "$(current)" = 0.9.0
check "  A was not restarted" test "$(cat "$root/supervisor/pid")" = "$pid_a"
check "  A still healthy" healthy

echo "== 3. deploy B2: config turns the ops server off → never ready → automatic rollback"
b2="$(variant b2 0.9.1)"
deploytest_config false >"$b2/config/deploytest.toml"
run_deploy b2 --timeout 20 "$b2"
check "unhealthy deploy exits 3: rolled back, previous healthy (rc=$rc)" test "$rc" = 3
check "  the whole deploy, pre-flight and rollback included, within 60 s (${took}s)" test "$took" -lt 60
downtime="$(sed -n 's/.*healthy (.*) after \([0-9]*\)s in all.*/\1/p' "$work/b2.log")"
check "  from the switch to A healthy again: ${downtime:-?}s" test "${downtime:-99}" -lt 60
check "  the report names the failure" grep -q "0.9.1  FAILED (not healthy after 20s: nothing answers" "$work/b2.log"
check "  the report names the rollback" grep -q "rollback: 0.9.0  healthy" "$work/b2.log"
check "  current → 0.9.0 again" test "$(current)" = 0.9.0
check "  A answers /ready and /health" healthy
check "  the service runs from releases/0.9.0" test "$(serving)" = 0.9.0
check "  B2 kept for inspection, marked failed" test -f "$root/releases/0.9.1/.deploy-failed"
check "  deploy.log records the rollback" grep -q "failed 0.9.1 .*rolled back to 0.9.0" "$root/deploy.log"

echo "== 4. the turn models into shared/models; deploy C (healthy): previous → A, old releases pruned (--keep 2)"
# What fetch-turn-models would download (no network here): copies, as an operator's would be.
cp "$turn_cache"/{silero_vad.onnx,smart-turn-v3.2-cpu.onnx,libonnxruntime.so} "$root/shared/models/"
"$root/releases/0.9.0/scripts/fetch-turn-models" "$root/shared/models" >"$work/fetch.log" 2>&1
check "the release's fetch-turn-models checks them in shared/models (rc=$?)" \
    test "$(grep -c "already in place and valid" "$work/fetch.log")" = 3
c="$(variant c 0.9.2)"
run_deploy c --timeout 60 "$c"
check "deploy C exits 0 (rc=$rc)" test "$rc" = 0
check "  the pre-flight finds the turn models" \
    grep -q "pre-flight: turn taking: Silero VAD, Smart Turn v3.2" "$work/c.log"
check "  the service runs ONNX Runtime from shared/models (the unit's OPENCLAW_MODELS_DIR)" \
    grep -q "/shared/models/libonnxruntime.so" "/proc/$(cat "$root/supervisor/pid")/maps"
check "  and does not fall back" sh -c \
    "sed -n '/^== start 0.9.2/,\$p' '$root/supervisor/service.log' | grep -c 'turn-taking models not installed' | grep -qx 0"
check "current → 0.9.2" test "$(current)" = 0.9.2
check "previous → 0.9.0" test "$(previous)" = 0.9.0
check "C healthy" healthy
check "pruned: B1 removed" test ! -e "$root/releases/0.9.1-b1"
check "kept: A (previous), B2, C" test "$(find "$root/releases" -mindepth 1 -maxdepth 1 ! -name '.*' | wc -l)" = 3

echo "== 5. manual rollback"
start=$SECONDS
run_rollback r1
check "rollback.sh → previous exits 0 (rc=$rc, $((SECONDS - start))s)" test "$rc" = 0
check "current → 0.9.0" test "$(current)" = 0.9.0
check "previous → 0.9.2 (a second rollback undoes it)" test "$(previous)" = 0.9.2
check "A healthy, serving" sh -c "[ $(code /ready) = 200 ] && [ $(serving) = 0.9.0 ]"
run_rollback r2 0.9.2
check "rollback.sh 0.9.2 exits 0 (rc=$rc)" test "$rc" = 0
check "current → 0.9.2" test "$(current)" = 0.9.2
"$rollback" --root "$root" --list >"$work/list.log"
check "--list marks current, previous and the failed release" sh -c \
    "grep -qx '0.9.2 (current)' '$work/list.log' && grep -qx '0.9.0 (previous)' '$work/list.log' && grep -q '^0.9.1 (failed: ' '$work/list.log'"
run_rollback r3 --timeout 10 0.9.1
check "rollback to a broken release comes back by itself (rc=$rc)" test "$rc" = 3
check "  current → 0.9.2" test "$(current)" = 0.9.2
check "  C healthy" healthy
run_rollback r4 no-such-version
check "rollback to a release that is not installed is refused" test "$rc" = 1

echo "== 6. one deploy at a time"
exec 8>"$root/.deploy.lock"
flock 8
export DEPLOY_LOCK_WAIT=1
run_deploy locked "$c"
unset DEPLOY_LOCK_WAIT
check "a deploy while another holds the lock is refused (rc=$rc)" test "$rc" = 1
check "  and says why" grep -q "another deploy or rollback holds" "$work/locked.log"
exec 8>&-

echo
echo "deploy: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
