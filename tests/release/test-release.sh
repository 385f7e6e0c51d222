#!/usr/bin/env bash
# scripts/release on a scratch repository: a tiny cargo workspace shaped like this one
# (workspace version, plugin-api with src/abi.rs, CHANGELOG.md), conventional commits, and
# the version, tag, Cargo files and changelog text after each release. No network.
#
#   tests/release/test-release.sh        needs git, python3, git-cliff (pip install git-cliff), cargo
set -uo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
release="$root/scripts/release"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
passed=0
failed=0

ok() { passed=$((passed + 1)); echo "ok   $*"; }
not_ok() { failed=$((failed + 1)); echo "FAIL $*"; }
check() { # check "description" command...
    local what="$1"; shift
    if "$@"; then ok "$what"; else not_ok "$what"; fi
}
has() { grep -qF -- "$2" "$1"; }
lacks() { ! grep -qF -- "$2" "$1"; }
tagged() { git rev-parse -q --verify "refs/tags/$1" >/dev/null; }
# The text of one `## [version]` section of CHANGELOG.md.
section() { awk -v v="## [$1]" 'index($0, v) == 1 {on = 1; print; next} /^## \[/ {on = 0} on' CHANGELOG.md; }
version_of() { sed -n "/^\[$2\]/,/^\[/s/^version = \"\(.*\)\"/\1/p" "$1" | head -1; }
commit() { # commit "message" file [content]
    local file="$2"
    mkdir -p "$(dirname "$file")"
    echo "${3:-$RANDOM$RANDOM}" >>"$file"
    git add -- "$file"
    git commit -q -m "$1"
}

command -v git-cliff >/dev/null || { echo "git-cliff is not installed: pip install git-cliff"; exit 1; }

cd "$work" || exit 1
git init -q -b main repo && cd repo || exit 1
git config user.email release-test@example.invalid
git config user.name "release test"
git config commit.gpgsign false
git config tag.gpgsign false
cp "$root/cliff.toml" .
cat >Cargo.toml <<'EOF'
[workspace]
resolver = "2"
members = ["plugin-api", "app"]

[workspace.package]
version = "0.1.0"
edition = "2021"

[workspace.dependencies]
plugin-api = { package = "openclaw-plugin-api", path = "plugin-api", version = "0.1.0" }
EOF
mkdir -p plugin-api/src app/src
cat >plugin-api/Cargo.toml <<'EOF'
[package]
name = "openclaw-plugin-api"
version = "0.1.0"
edition.workspace = true

[lib]
name = "plugin_api"
EOF
echo "pub mod abi;" >plugin-api/src/lib.rs
echo "pub struct Transcript;" >plugin-api/src/abi.rs
cat >app/Cargo.toml <<'EOF'
[package]
name = "app"
version.workspace = true
edition.workspace = true

[dependencies]
plugin-api.workspace = true
EOF
echo "fn main() {}" >app/src/main.rs
cat >CHANGELOG.md <<'EOF'
# Changelog

All notable changes to this project are documented here.

## [Unreleased]

### Features
- A hand-written summary of the first features.
EOF
cargo generate-lockfile --offline -q 2>/dev/null || cargo generate-lockfile -q
git add -A && git commit -q -m "chore: scaffold"

echo "== first release: no tag yet, so the version in Cargo.toml"
commit "feat(app): greet the user" app/src/greet.rs
commit "fix: do not crash on an empty name" app/src/greet.rs
commit "docs: explain greetings" README.md
commit "ci: run the tests" ci.txt
commit "this one is not conventional" notes.txt
out="$("$release" --date 2030-01-02 2>&1)"; rc=$?
check "first release exits 0 ($out)" test "$rc" -eq 0
check "tag v0.1.0" tagged v0.1.0
check "commit chore(release): 0.1.0" test "$(git log -1 --format=%s)" = "chore(release): 0.1.0"
section 0.1.0 >s.txt
check "section heading with the date" has s.txt "## [0.1.0] - 2030-01-02"
check "hand-written Features kept" has s.txt "- A hand-written summary of the first features."
check "generated entries follow the hand-written ones" sh -c "grep -A3 '^### Features' s.txt | tail -2 | grep -qx -- '- app: greet the user'"
check "Bug Fixes generated" has s.txt "- do not crash on an empty name"
check "Documentation generated" has s.txt "- explain greetings"
check "Internal keeps the type" has s.txt "- ci: run the tests"
check "unconventional commit left out" lacks s.txt "not conventional"
check "Unreleased heading kept, emptied" test "$(sed -n '/^## \[Unreleased\]/,/^## \[0.1.0\]/p' CHANGELOG.md | grep -c '^- ')" -eq 0
check "groups in order" test "$(grep '^### ' s.txt | tr '\n' '|')" = "### Features|### Bug Fixes|### Documentation|### Internal|"
check "tag message holds the section" sh -c 'git tag -l --format="%(contents)" v0.1.0 | grep -qF "do not crash on an empty name"'
rm s.txt

echo "== fix → patch"
commit "fix(app): trim whitespace" app/src/greet.rs
"$release" --date 2030-01-03 >/dev/null 2>&1
check "fix gives 0.1.1" tagged v0.1.1
check "workspace version 0.1.1" test "$(version_of Cargo.toml workspace.package)" = "0.1.1"
check "Cargo.lock has app 0.1.1" grep -A1 -x 'name = "app"' Cargo.lock | grep -qx 'version = "0.1.1"'
section 0.1.1 >s.txt
check "0.1.1 lists only its own commits" test "$(grep -c '^- ' s.txt)" -eq 1
check "0.1.1 bug fix entry" has s.txt "- app: trim whitespace"
check "0.1.0 section still there" has CHANGELOG.md "## [0.1.0] - 2030-01-02"
check "newest section first" test "$(grep -m1 '^## \[[0-9]' CHANGELOG.md)" = "## [0.1.1] - 2030-01-03"
rm s.txt

echo "== perf → patch; feat → minor; internal only → nothing"
commit "perf: cache greetings" app/src/greet.rs
"$release" >/dev/null 2>&1
check "perf gives 0.1.2" tagged v0.1.2
check "Performance group" sh -c 'grep -A3 "^### Performance" CHANGELOG.md | grep -qF -- "- cache greetings"'
commit "test: cover greetings" app/src/greet.rs
commit "feat: say goodbye" app/src/bye.rs
"$release" >/dev/null 2>&1
check "feat gives 0.2.0" tagged v0.2.0
commit "ci: cache the build" ci.txt
commit "chore: tidy" notes.txt
out="$("$release" 2>&1)"; rc=$?
check "internal-only commits release nothing (exit 0)" test "$rc" -eq 0
check "says so" grep -q "nothing to release" <<<"$out"
check "no new tag" test "$(git tag | wc -l)" -eq 4
check "--print-next prints nothing" test -z "$("$release" --print-next)"

echo "== dry run changes nothing"
commit "feat(app): wave" app/src/wave.rs
head_before="$(git rev-parse HEAD)"
out="$("$release" --dry-run 2>&1)"
check "dry run plans 0.3.0" grep -q "release 0.3.0" <<<"$out"
check "dry run shows the section" grep -q -- "- app: wave" <<<"$out"
check "dry run: no commit" test "$(git rev-parse HEAD)" = "$head_before"
check "dry run: no tag" test -z "$(git tag -l v0.3.0)"
check "dry run: tree clean" test -z "$(git status --porcelain)"
check "--print-next" test "$("$release" --print-next)" = "0.3.0"
echo "dirt" >>app/src/wave.rs
out="$("$release" 2>&1)"; rc=$?
check "refuses a dirty tree" test "$rc" -ne 0
check "names the change" grep -q "app/src/wave.rs" <<<"$out"
git checkout -q -- app/src/wave.rs
"$release" >/dev/null 2>&1
check "feat gives 0.3.0" tagged v0.3.0

echo "== plugin-api ABI contract"
commit "feat(plugin-api): a language field on Transcript" plugin-api/src/abi.rs "pub struct Language;"
out="$("$release" 2>&1)"; rc=$?
check "ABI change without a plugin-api bump is refused (exit 2)" test "$rc" -eq 2
check "the refusal names abi.rs" grep -q "plugin-api/src/abi.rs changed since v0.3.0" <<<"$out"
check "and the version it needs" grep -q "needs plugin-api 0.2.0" <<<"$out"
check "refused: no tag" test -z "$(git tag -l v0.4.0)"
check "refused: tree clean" test -z "$(git status --porcelain)"
out="$("$release" --bump-plugin-api 2>&1)"; rc=$?
check "--bump-plugin-api releases ($out)" test "$rc" -eq 0
check "workspace 0.4.0" tagged v0.4.0
check "plugin-api 0.2.0 (minor while 0.x)" test "$(version_of plugin-api/Cargo.toml package)" = "0.2.0"
check "workspace dependency on plugin-api 0.2.0" grep -q 'plugin-api = {.*version = "0.2.0"' Cargo.toml
check "Cargo.lock has plugin-api 0.2.0" grep -A1 -x 'name = "openclaw-plugin-api"' Cargo.lock | grep -qx 'version = "0.2.0"'
check "changelog notes the ABI change" sh -c 'sed -n "/^## \[0.4.0\]/,/^## \[0.3.0\]/p" CHANGELOG.md | grep -q "ABI changed"'

commit "fix(plugin-api): clearer settings error" plugin-api/src/lib.rs "// sdk"
"$release" >/dev/null 2>&1
check "SDK-only change: workspace 0.4.1" tagged v0.4.1
check "SDK-only change: plugin-api patch 0.2.1" test "$(version_of plugin-api/Cargo.toml package)" = "0.2.1"

commit "docs(plugin-api): comment the ABI" plugin-api/src/abi.rs "// a comment"
commit "fix: typo" app/src/greet.rs
out="$("$release" --abi-compatible 2>&1)"; rc=$?
check "--abi-compatible: a patch bump for plugin-api ($out)" test "$(version_of plugin-api/Cargo.toml package)" = "0.2.2"

# A plugin-api bumped by hand beforehand satisfies the rule.
commit "feat(plugin-api)!: rename Transcript" plugin-api/src/abi.rs "pub struct Text;"
sed -i 's/^version = "0.2.2"/version = "0.3.0"/' plugin-api/Cargo.toml
sed -i 's/version = "0.2.2" }/version = "0.3.0" }/' Cargo.toml
git commit -q -am "build(plugin-api): 0.3.0"
out="$("$release" 2>&1)"; rc=$?
check "ABI already bumped by hand is accepted ($out)" test "$rc" -eq 0
check "breaking change (!) gives a major: 1.0.0" tagged v1.0.0
check "breaking entry marked" sh -c 'sed -n "/^## \[1.0.0\]/,/^## \[0.4.2\]/p" CHANGELOG.md | grep -qF -- "- plugin-api: **breaking:** rename Transcript"'
check "plugin-api stays 0.3.0" test "$(version_of plugin-api/Cargo.toml package)" = "0.3.0"

echo "== BREAKING CHANGE footer → major; the ABI bump from 1.0 is the major"
git commit -q --allow-empty -m "refactor: new config layout" -m "BREAKING CHANGE: [audio] moved to [pipeline]"
"$release" >/dev/null 2>&1
check "footer gives 2.0.0" tagged v2.0.0
sed -i 's/^version = "0.3.0"/version = "1.0.0"/' plugin-api/Cargo.toml
sed -i 's/version = "0.3.0" }/version = "1.0.0" }/' Cargo.toml
git commit -q -am "feat(plugin-api): stable 1.0"
"$release" >/dev/null 2>&1
commit "feat(plugin-api): a new method" plugin-api/src/abi.rs "pub struct More;"
out="$("$release" 2>&1)"; rc=$?
check "from 1.0 the refusal asks for the major (2.0.0)" grep -q "needs plugin-api 2.0.0" <<<"$out"
"$release" --bump-plugin-api >/dev/null 2>&1
check "--bump-plugin-api from 1.0.0 gives 2.0.0" test "$(version_of plugin-api/Cargo.toml package)" = "2.0.0"

echo "== the GitHub Actions outputs"
commit "fix: last one" app/src/greet.rs
"$release" --github-output outputs.txt --notes-file notes.md >/dev/null 2>&1
check "outputs: version" grep -qx "version=2.2.1" outputs.txt
check "outputs: tag" grep -qx "tag=v2.2.1" outputs.txt
check "outputs: released" grep -qx "released=true" outputs.txt
check "outputs: plugin_api_changed" grep -qx "plugin_api_changed=false" outputs.txt
check "notes file holds the section" sh -c 'head -1 notes.md | grep -q "^## \[2.2.1\] - " && grep -qF -- "- last one" notes.md'
rm -f outputs.txt notes.md

echo
echo "release: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
