#!/usr/bin/env bash
# A stand-in for systemd in the deploy tests (deploy.sh --supervisor): runs
# $OPENCLAW_ROOT/current/bin/openclaw-voice run as a plain background process, as the unit
# does: working directory `current` (resolved at start), the `Environment=` lines of the
# release's own deploy/openclaw-voice.service, then the environment file on top.
#
#   supervisor.sh restart|stop|status|logs
set -euo pipefail

root="${OPENCLAW_ROOT:?deploy.sh sets OPENCLAW_ROOT}"
state="$root/supervisor"
pidfile="$state/pid"
log="$state/service.log"
mkdir -p "$state"

running() { [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; }

stop() {
    running || return 0
    local pid
    pid="$(cat "$pidfile")"
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 150); do # 15 s, then as systemd would: SIGKILL
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$pidfile"
}

start() {
    local dir
    dir="$(cd -P "$root/current" && pwd)"
    (
        cd "$dir"
        [ -f deploy/openclaw-voice.service ] || { echo "no deploy/openclaw-voice.service in $dir"; exit 1; }
        while IFS= read -r setting; do
            export "${setting#Environment=}"
        done < <(grep '^Environment=' deploy/openclaw-voice.service)
        if [ -f "${OPENCLAW_ENV_FILE:-}" ]; then
            set -a
            # shellcheck disable=SC1090
            . "$OPENCLAW_ENV_FILE"
            set +a
        fi
        echo "== start $(basename "$dir") $(date -u +%H:%M:%S)"
        exec setsid ./bin/openclaw-voice run </dev/null
    ) >>"$log" 2>&1 &
    echo $! >"$pidfile"
}

case "${1:-}" in
    restart) stop; start ;;
    stop) stop ;;
    status) running ;;
    logs) tail -n 30 "$log" 2>/dev/null ;;
    *) echo "usage: $0 restart|stop|status|logs" >&2; exit 1 ;;
esac
