#!/usr/bin/env bash
# Installs an OpenClaw Voice release and switches to it, rolling back by itself if it is not
# healthy. Run on the server as root, or as a deploy user that owns --root, can read the
# environment file and may run `sudo -n systemctl restart|stop <unit>` and `journalctl`.
#
#   deploy.sh [options] RELEASE        RELEASE: openclaw-voice-X.Y.Z-*.tar.gz or its directory
#   deploy.sh [options] --activate V   switch to the installed release V (rollback.sh uses it)
#
# Steps: verify the tarball against SHA256SUMS (--checksums) → unpack into
# ROOT/releases/<version>/ → pre-flight `openclaw-voice check-config` in that release with the
# service's environment → switch the ROOT/current symlink atomically → restart the service →
# wait for GET /ready, then GET /health, to answer 200 → keep the last --keep releases.
# If the new release is not healthy within --timeout seconds (or its process keeps dying),
# `current` goes back to the previous release, which is restarted and verified, and the script
# exits non-zero with a report. Every attempt is appended to ROOT/deploy.log.
#
# Options (defaults in brackets; each also reads an environment variable):
#   --root DIR          install root [/opt/openclaw-voice; OPENCLAW_ROOT]
#   --env-file FILE     the service's environment, for the pre-flight check
#                       [/etc/openclaw-voice/openclaw-voice.env; OPENCLAW_ENV_FILE]
#   --url URL           where the ops server answers [http://127.0.0.1:3001; OPENCLAW_OPS_URL]
#   --timeout SECONDS   how long to wait for /ready and /health [60; DEPLOY_TIMEOUT]
#   --keep N            releases to keep, the current and previous always among them [5]
#   --service NAME      systemd unit to restart [openclaw-voice]
#   --supervisor CMD    instead of systemd: run `CMD restart|stop|status|logs` (CMD is split on
#                       spaces; it gets OPENCLAW_ROOT and OPENCLAW_ENV_FILE) [systemctl]
#   --checksums FILE    verify the tarball against this SHA256SUMS first
#   --version V         install as V instead of the release's VERSION file
#   --force             reinstall a version that is already in releases/
#   --no-preflight      skip `check-config` (not recommended)
#
# Exit status: 0 deployed and healthy; 1 usage or install error (nothing switched);
# 2 pre-flight failed (nothing switched); 3 unhealthy, rolled back, previous release healthy;
# 4 unhealthy and the rollback is unhealthy too (page someone: docs/RUNBOOK.md);
# 5 unhealthy and there was no previous release to go back to.
set -euo pipefail

ROOT="${OPENCLAW_ROOT:-/opt/openclaw-voice}"
ENV_FILE="${OPENCLAW_ENV_FILE:-/etc/openclaw-voice/openclaw-voice.env}"
URL="${OPENCLAW_OPS_URL:-http://127.0.0.1:3001}"
TIMEOUT="${DEPLOY_TIMEOUT:-60}"
KEEP=5
SERVICE=openclaw-voice
SUPERVISOR=""
CHECKSUMS=""
VERSION=""
FORCE=0
PREFLIGHT=1
ACTIVATE=""
SOURCE=""
# A process that is not running for this many seconds in a row has failed (faster than the
# whole timeout when a release crashes at start).
DEAD_AFTER=5

say() { echo "deploy: $*"; }
die() { echo "deploy: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?--root needs a directory}"; shift 2 ;;
        --env-file) ENV_FILE="${2:?}"; shift 2 ;;
        --url) URL="${2:?}"; shift 2 ;;
        --timeout) TIMEOUT="${2:?}"; shift 2 ;;
        --keep) KEEP="${2:?}"; shift 2 ;;
        --service) SERVICE="${2:?}"; shift 2 ;;
        --supervisor) SUPERVISOR="${2:?}"; shift 2 ;;
        --checksums) CHECKSUMS="${2:?}"; shift 2 ;;
        --version) VERSION="${2:?}"; shift 2 ;;
        --activate) ACTIVATE="${2:?--activate needs a version}"; shift 2 ;;
        --force) FORCE=1; shift ;;
        --no-preflight) PREFLIGHT=0; shift ;;
        -h | --help) sed -n '2,36p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) die "unknown option $1 (see --help)" ;;
        *) [ -z "$SOURCE" ] || die "one release at a time ($SOURCE, $1)"; SOURCE="$1"; shift ;;
    esac
done
[ -n "$SOURCE" ] || [ -n "$ACTIVATE" ] || die "which release? (see --help)"
[[ "$TIMEOUT" =~ ^[0-9]+$ ]] || die "--timeout must be a number of seconds"
if ! [[ "$KEEP" =~ ^[0-9]+$ ]] || [ "$KEEP" -lt 2 ]; then die "--keep must be at least 2"; fi
command -v curl >/dev/null || die "curl is needed to check /ready and /health"
URL="${URL%/}"
export OPENCLAW_ROOT="$ROOT" OPENCLAW_ENV_FILE="$ENV_FILE"

# ---- the service: systemd, or a --supervisor hook ----
# The lock's descriptor (9) is closed for them, or a service started by the hook would hold
# the lock for as long as it runs.
# shellcheck disable=SC2086 # the hook is a command line, split on purpose
service() {
    if [ -n "$SUPERVISOR" ]; then
        $SUPERVISOR "$1" 9>&-
        return
    fi
    # Not root: the deploy user may run these through sudo (docs/DEPLOYMENT.md, "sudoers").
    local sudo=()
    [ "$(id -u)" = 0 ] || sudo=(sudo -n)
    case "$1" in
        restart) "${sudo[@]}" systemctl restart "$SERVICE" 9>&- ;;
        stop) "${sudo[@]}" systemctl stop "$SERVICE" 9>&- ;;
        status) systemctl is-active --quiet "$SERVICE" ;;
        logs) "${sudo[@]}" journalctl -u "$SERVICE" -n 30 --no-pager ;;
    esac
}

log_line() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) $*" >>"$ROOT/deploy.log"; }

# The release `current` points at (a version), or nothing.
current_version() {
    [ -L "$ROOT/current" ] || return 0
    basename "$(readlink "$ROOT/current")"
}

# Atomically points ROOT/<link> at releases/<version> (rename(2) over the old link).
switch_link() {
    ln -sfn "releases/$2" "$ROOT/.$1.tmp"
    mv -Tf "$ROOT/.$1.tmp" "$ROOT/$1"
}

# Waits for /ready then /health to answer 200. Sets WHY to the last problem seen.
WHY=""
wait_healthy() {
    local deadline=$((SECONDS + TIMEOUT)) dead=0 code
    WHY="no answer yet"
    while [ "$SECONDS" -lt "$deadline" ]; do
        if service status >/dev/null 2>&1; then dead=0; else dead=$((dead + 1)); fi
        if [ "$dead" -ge "$DEAD_AFTER" ]; then
            WHY="the service is not running (it exited or keeps restarting)"
            return 1
        fi
        code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/ready" || true)"
        if [ "$code" = 200 ]; then
            code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$URL/health" || true)"
            if [ "$code" = 200 ]; then
                return 0
            fi
            WHY="/ready answers 200 but /health answers ${code/000/nothing}"
        elif [ "$code" = 000 ]; then
            WHY="nothing answers on $URL/ready"
        else
            WHY="/ready answers $code"
        fi
        sleep 1
    done
    WHY="not healthy after ${TIMEOUT}s: $WHY"
    return 1
}

# "healthy, version 1.2.3" from /health's JSON (the first "status" is the overall one).
health_summary() {
    local body status version
    body="$(curl -s --max-time 2 "$URL/health" || true)"
    status="$(printf '%s' "$body" | grep -o '"status":"[a-z_]*"' | head -1 | cut -d'"' -f4)"
    version="$(printf '%s' "$body" | grep -o '"version":"[^"]*"' | head -1 | cut -d'"' -f4)"
    echo "${status:-unknown}, version ${version:-unknown}"
}

# Runs the release's own `check-config` in its directory, with the service's environment
# (the unit's defaults, then the environment file, as systemd does).
preflight() (
    cd "$1"
    export OPENCLAW_ENV="${OPENCLAW_ENV:-production}" OPENCLAW__PLUGINS__DIR=plugins \
        OPENCLAW_MODELS_DIR=models
    if [ -f "$ENV_FILE" ]; then
        set -a
        # shellcheck disable=SC1090 # the operator's file
        . "$ENV_FILE"
        set +a
    fi
    ./bin/openclaw-voice check-config
)

# ---- lock: two deploys (or a deploy and a rollback) never overlap on one host ----
mkdir -p "$ROOT/releases" "$ROOT/shared/models" "$ROOT/shared/logs" "$ROOT/shared/data"
exec 9>"$ROOT/.deploy.lock"
if ! flock -w "${DEPLOY_LOCK_WAIT:-120}" 9; then
    die "another deploy or rollback holds $ROOT/.deploy.lock (waited ${DEPLOY_LOCK_WAIT:-120}s)"
fi

# ---- install ----
if [ -n "$ACTIVATE" ]; then
    VERSION="$ACTIVATE"
    [ -d "$ROOT/releases/$VERSION" ] || die "release $VERSION is not installed in $ROOT/releases (installed: $(find "$ROOT/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%f ')) "
    PREFLIGHT=0
else
    [ -e "$SOURCE" ] || die "$SOURCE does not exist"
    staging="$ROOT/releases/.incoming.$$"
    trap 'rm -rf "$staging"' EXIT
    mkdir -p "$staging"
    if [ -d "$SOURCE" ]; then
        cp -a "$SOURCE/." "$staging/"
    else
        if [ -n "$CHECKSUMS" ]; then
            expected="$(grep -E "[ *]$(basename "$SOURCE")\$" "$CHECKSUMS" | awk '{print $1}' | head -1)"
            [ -n "$expected" ] || die "$(basename "$SOURCE") is not listed in $CHECKSUMS"
            actual="$(sha256sum "$SOURCE" | awk '{print $1}')"
            [ "$expected" = "$actual" ] || die "checksum mismatch for $SOURCE: expected $expected, got $actual"
            say "checksum verified ($actual)"
        fi
        tar -xzf "$SOURCE" -C "$staging" --strip-components=1 --no-same-owner
    fi
    [ -x "$staging/bin/openclaw-voice" ] || die "$SOURCE is not a release: no bin/openclaw-voice"
    if [ -z "$VERSION" ]; then
        [ -f "$staging/VERSION" ] || die "$SOURCE has no VERSION file; pass --version"
        VERSION="$(tr -d '[:space:]' <"$staging/VERSION")"
    fi
    [[ "$VERSION" =~ ^[A-Za-z0-9][A-Za-z0-9._+-]*$ ]] || die "bad version name '$VERSION'"
    if [ -d "$ROOT/releases/$VERSION" ]; then
        if [ "$FORCE" = 1 ] && [ "$(current_version)" != "$VERSION" ]; then
            rm -rf "$ROOT/releases/$VERSION"
        elif [ "$FORCE" = 1 ]; then
            die "$VERSION is the current release; deploy another version first"
        else
            say "$VERSION is already installed; switching to it as installed (--force reinstalls)"
        fi
    fi
    if [ ! -d "$ROOT/releases/$VERSION" ]; then
        # Per-host state lives in shared/ and is linked into each release.
        ln -sfn ../../shared/models "$staging/models"
        ln -sfn ../../shared/logs "$staging/logs"
        # Per-server settings (storage.path = data/guild-settings.sqlite) outlive releases.
        ln -sfn ../../shared/data "$staging/data"
        mv -T "$staging" "$ROOT/releases/$VERSION"
    fi
    touch "$ROOT/releases/$VERSION"
    say "installed $VERSION in $ROOT/releases/$VERSION"
fi

release_dir="$ROOT/releases/$VERSION"
previous="$(current_version)"

# ---- pre-flight: the new release checks its own config and plugins, in place ----
if [ "$PREFLIGHT" = 1 ]; then
    say "pre-flight: check-config in $release_dir"
    if ! report="$(preflight "$release_dir" 2>&1)"; then
        echo "$report" | tail -n 20 | sed 's/^/    /'
        log_line "preflight-failed $VERSION (current stays ${previous:-none})"
        echo "deploy: error: pre-flight failed for $VERSION: nothing was switched, ${previous:-no release} stays current" >&2
        exit 2
    fi
    # What turn taking the release will run; where the models go when they are missing.
    sed -n '/^turn taking: /,/^[^ ]/{/^turn taking: \|^  warning: /p}' <<<"$report" |
        sed 's/^ */deploy: pre-flight: /'
    if grep -q "turn-taking models not installed" <<<"$report"; then
        say "pre-flight: to fetch them: $release_dir/scripts/fetch-turn-models $ROOT/shared/models"
    fi
fi

if [ "$previous" = "$VERSION" ]; then
    say "$VERSION is already current; restarting it"
fi

# ---- switch, restart, verify ----
started=$SECONDS
switch_link current "$VERSION"
say "current → $VERSION (was ${previous:-none}); restarting"
service restart || true
if wait_healthy; then
    if [ -n "$previous" ] && [ "$previous" != "$VERSION" ]; then
        switch_link previous "$previous"
    fi
    rm -f "$release_dir/.deploy-failed"
    log_line "deployed $VERSION (previous ${previous:-none}) in $((SECONDS - started))s"
    say "OK: $VERSION is healthy after $((SECONDS - started))s ($(health_summary))"
    # Keep the newest KEEP releases by install time, never current or previous.
    keep_prev="$(basename "$(readlink "$ROOT/previous" 2>/dev/null || echo none)")"
    find "$ROOT/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %f\n' |
        sort -rn | awk -v keep="$KEEP" 'NR > keep {print $2}' |
        while read -r old; do
            if [ "$old" = "$VERSION" ] || [ "$old" = "$keep_prev" ]; then continue; fi
            rm -rf "${ROOT:?}/releases/$old"
            say "removed old release $old"
        done
    exit 0
fi

# ---- the new release is unhealthy: roll back ----
reason="$WHY"
echo "$reason" >"$release_dir/.deploy-failed"
say "FAILED: $VERSION is unhealthy: $reason"
say "service log (last lines):"
service logs 2>/dev/null | tail -n 15 | sed 's/^/    /' || true
if [ -z "$previous" ] || [ "$previous" = "$VERSION" ]; then
    log_line "failed $VERSION ($reason); no previous release to roll back to"
    say "no previous release to roll back to: the service is down. See docs/RUNBOOK.md"
    exit 5
fi
switch_link current "$previous"
say "rolling back: current → $previous; restarting"
service restart || true
if wait_healthy; then
    log_line "failed $VERSION ($reason); rolled back to $previous in $((SECONDS - started))s"
    echo
    echo "deploy report"
    echo "  release:  $VERSION  FAILED ($reason)"
    echo "  rollback: $previous  healthy ($(health_summary)) after $((SECONDS - started))s in all"
    echo "  failed release kept for inspection: $release_dir"
    exit 3
fi
log_line "failed $VERSION ($reason); rollback to $previous unhealthy too ($WHY)"
echo
echo "deploy report"
echo "  release:  $VERSION  FAILED ($reason)"
echo "  rollback: $previous  ALSO UNHEALTHY ($WHY)"
echo "  the service is down: follow docs/RUNBOOK.md (SEV1)"
exit 4
