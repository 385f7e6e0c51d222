#!/usr/bin/env bash
# Manual rollback: switches `current` to the previous release (or a named one), restarts the
# service and verifies /ready and /health; if that release is not healthy either, it goes back
# to the one that was running. The same checks and report as deploy.sh, which it calls.
#
#   rollback.sh [options]            back to the previous release (ROOT/previous)
#   rollback.sh [options] VERSION    to an installed release, e.g. 0.3.1
#   rollback.sh [options] --list     the installed releases, newest first
#
# Options are deploy.sh's: --root, --env-file, --url, --timeout, --keep, --service,
# --supervisor.
# Exit status: deploy.sh's (0 healthy on the release asked for; 3 it was unhealthy and the
# release that was running is back; 4 both unhealthy).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="${OPENCLAW_ROOT:-/opt/openclaw-voice}"
target=""
list=0
args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --root) ROOT="${2:?}"; args+=("$1" "$2"); shift 2 ;;
        --env-file | --url | --timeout | --keep | --service | --supervisor) args+=("$1" "${2:?}"); shift 2 ;;
        --list) list=1; shift ;;
        -h | --help) sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "rollback: unknown option $1 (see --help)" >&2; exit 1 ;;
        *) target="$1"; shift ;;
    esac
done

current="$(basename "$(readlink "$ROOT/current" 2>/dev/null || echo none)")"
previous="$(basename "$(readlink "$ROOT/previous" 2>/dev/null || echo none)")"

if [ "$list" = 1 ]; then
    find "$ROOT/releases" -mindepth 1 -maxdepth 1 -type d ! -name '.*' -printf '%T@ %f\n' |
        sort -rn | while read -r _ version; do
            mark=""
            [ "$version" = "$current" ] && mark=" (current)"
            [ "$version" = "$previous" ] && mark=" (previous)"
            [ -f "$ROOT/releases/$version/.deploy-failed" ] &&
                mark="$mark (failed: $(cat "$ROOT/releases/$version/.deploy-failed"))"
            echo "$version$mark"
        done
    exit 0
fi

if [ -z "$target" ]; then
    [ "$previous" != none ] || { echo "rollback: no previous release recorded in $ROOT/previous; name one (--list)" >&2; exit 1; }
    target="$previous"
fi
[ "$target" != "$current" ] || { echo "rollback: $target is already current" >&2; exit 1; }
echo "rollback: $current → $target"
exec "$here/deploy.sh" "${args[@]}" --activate "$target"
