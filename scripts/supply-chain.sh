#!/usr/bin/env bash
# scripts/supply-chain.sh: the dependency checks, offline (a step of scripts/test.sh).
#
#   scripts/supply-chain.sh            the checks below, in order; exit 0 only when all pass
#   scripts/supply-chain.sh bin FILE [TRIPLE]
#                                      only the check of a built binary's embedded dependency
#                                      list (scripts/check-deploy.sh and scripts/release.sh call it)
#
# 1. cargo deny check (deny.toml): advisories against the RustSec snapshot in
#    ../shared/advisory-db (SR_ADVISORY_DB overrides; read-only, never fetched: its SNAPSHOT.md
#    gives the commit and the date, which is the horizon of this check and is printed), licenses
#    (an Apache-2.0-compatible allow-list), bans (duplicate versions) and sources (crates.io only).
#    cargo-deny opens its database as a git repository (gix), so a throwaway one is made from the
#    copy under target/tmp/advisory-dbs/, committed with the snapshot's date.
# 2. Every ignored advisory in deny.toml has a one-line reason that starts with
#    "expires YYYY-MM-DD:" and that date is not past.
# 3. The check fails when it should: a copy of the database with one crafted advisory against a
#    crate in Cargo.lock (all its versions) makes `cargo deny check advisories` fail naming that
#    advisory; ignored with a reason and a future expiry it passes; with a past expiry step 2
#    refuses it. So a green step 1 means the snapshot has nothing against Cargo.lock, not that
#    the check saw no database.
#
# `bin FILE`: rust-audit-info reads the `.dep-v0` section cargo-auditable embedded in FILE (what
# `cargo audit bin`, Trivy and Syft read) and the check fails unless the list has this package
# as its root, names every direct dependency of Cargo.toml, and holds only crates and versions
# that Cargo.lock pins. It also prints any difference from the graph `cargo tree -e normal,build`
# resolves for TRIPLE (default aarch64-unknown-linux-gnu, Lambda arm64).
#
# Tools: cargo-deny and rust-audit-info, compiled once into .tools/ (scripts/tools.sh); python3
# (3.11+, for tomllib) and git. No network beyond crates.io for that first install.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
py=$(command -v python3) || {
    echo "supply-chain: python3 not found" >&2
    exit 1
}
target_dir=$(cargo metadata --format-version 1 --no-deps | "$py" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

# `bin FILE [TRIPLE]`: the embedded dependency list of a built binary against Cargo.lock.
check_bin() {
    local file=$1 triple=${2:-aarch64-unknown-linux-gnu} embedded meta lock
    [[ -f "$file" ]] || {
        echo "supply-chain: $file: no such file" >&2
        return 1
    }
    # shellcheck source=scripts/tools.sh
    . "$root/scripts/tools.sh" rust-audit-info
    if ! embedded=$(rust-audit-info "$file" 2>&1); then
        printf '%s\n' "$embedded" >&2
        echo "supply-chain: $file carries no dependency list (.dep-v0); was it built with cargo-auditable?" >&2
        return 1
    fi
    # What the binary must carry: the package as its root, every direct normal dependency of
    # Cargo.toml, and nothing Cargo.lock does not pin (same name, same version). The full graph
    # for the target (`cargo tree -e normal,build`) is compared too and any difference printed.
    meta=$(cargo metadata --locked --format-version 1 --no-deps)
    lock=$(cargo tree --locked -e normal,build --target "$triple" --prefix none --format '{p}' --no-dedupe)
    "$py" - "$file" "$root/Cargo.lock" <(printf '%s' "$embedded") <(printf '%s' "$meta") <(printf '%s' "$lock") <<'PY'
import json, re, sys, tomllib

name, lock_path, embedded_path, meta_path, tree_path = sys.argv[1:6]
doc = json.load(open(embedded_path))
# The format: auditable-serde's VersionInfo, {"packages": [{"name", "version", "source",
# "kind"?, "dependencies"?, "root"?}], "format": 1}; kind "build" marks build-time-only crates.
embedded = {(p["name"], p["version"]) for p in doc["packages"]}
names = {n for n, _ in embedded}
roots = [p["name"] for p in doc["packages"] if p.get("root")]
locked = {(p["name"], p["version"]) for p in tomllib.load(open(lock_path, "rb"))["package"]}
pkg = json.load(open(meta_path))["packages"][0]
direct = sorted({d["name"] for d in pkg["dependencies"] if d["kind"] is None})
tree = set()
for line in open(tree_path).read().splitlines():
    m = re.match(r"^(\S+) v(\S+)", line.strip())
    if m:
        tree.add((m.group(1), m.group(2)))
errors = []
if roots != [pkg["name"]]:
    errors.append(f"root package {roots}, expected ['{pkg['name']}']")
errors += [f"{n} {v} is in the binary but not in Cargo.lock" for n, v in sorted(embedded - locked)]
errors += [f"direct dependency {n} is not in the binary's list" for n in direct if n not in names]
for line in errors:
    print(f"supply-chain: {name}: {line}", file=sys.stderr)
if errors:
    sys.exit(f"supply-chain: {name}: the embedded dependency list does not match Cargo.lock")
for n, v in sorted(tree - embedded):
    print(f"  note: cargo tree lists {n} {v} for the target; the binary does not")
extra = sorted(f"{n} {v}" for n, v in embedded - tree)
if extra:
    # cargo-auditable takes features from `cargo metadata`, whose resolve unifies the
    # dev-dependencies' features (tokio's test-util, aws-smithy-runtime's test-util, ...), so its
    # list can name crates the build does not link (here: the test clients' http 0.2, ...).
    print(f"  note: the list also names {len(extra)} crates that cargo tree does not resolve for "
          f"the target (features unified with dev-dependencies): {', '.join(extra)}")
runtime = sum(1 for p in doc["packages"] if p.get("kind", "runtime") == "runtime")
same = "the same set as" if embedded == tree else "a superset (note above) of"
print(f"supply-chain: {name} lists its {len(embedded)} crates ({runtime} runtime, "
      f"{len(embedded) - runtime} build-time), all pinned by Cargo.lock, all {len(direct)} direct "
      f"dependencies among them; {same} `cargo tree` for the target")
PY
}

if [[ "${1:-}" == bin ]]; then
    shift
    (($# >= 1)) || {
        echo "usage: scripts/supply-chain.sh bin FILE [TRIPLE]" >&2
        exit 2
    }
    check_bin "$@"
    exit
fi

# shellcheck source=scripts/tools.sh
. "$root/scripts/tools.sh" cargo-deny

snapshot="${SR_ADVISORY_DB:-$root/../shared/advisory-db}"
[[ -f "$snapshot/SNAPSHOT.md" && -d "$snapshot/crates" ]] || {
    echo "supply-chain: no advisory database snapshot at $snapshot (SNAPSHOT.md and crates/)" >&2
    exit 1
}
snapshot=$(cd "$snapshot" && pwd)
# SNAPSHOT.md: "... taken at its commit <40 hex> of <YYYY-MM-DD>, ..." (the words may wrap).
read -r snap_commit snap_date < <("$py" - "$snapshot/SNAPSHOT.md" <<'PY'
import re, sys
text = " ".join(open(sys.argv[1]).read().split())
m = re.search(r"commit ([0-9a-f]{40}) of (\d{4}-\d{2}-\d{2})", text)
if not m:
    sys.exit("supply-chain: SNAPSHOT.md names no 'commit <sha> of <date>'")
print(m.group(1), m.group(2))
PY
)
age=$(( ($(date -u +%s) - $(date -u -d "$snap_date" +%s)) / 86400 ))
echo "supply-chain: RustSec advisory database snapshot of $snap_date (commit ${snap_commit:0:12}, $age days old): advisories published after that date are not checked"

# cargo-deny looks for the database of a URL in <db-path>/<directory named after the URL>
# (tame-index's url_to_local_dir); for https://github.com/RustSec/advisory-db, cargo-deny 0.20.2
# names it this. A new pin that names it otherwise fails below with "failed to open advisory
# database" and the path it wanted.
db_dir=advisory-db-3157b0e258782691

commit_db() { # DIR: commit everything in DIR, dated at the snapshot, as in a clone taken then
    (
        cd "$1"
        [[ -d .git ]] || git init -q
        git add -A
        GIT_AUTHOR_DATE="${snap_date}T00:00:00Z" GIT_COMMITTER_DATE="${snap_date}T00:00:00Z" \
            git -c user.name=supply-chain -c user.email=supply-chain@localhost \
            -c commit.gpgsign=false -c core.hooksPath=/dev/null -c core.logAllRefUpdates=false \
            commit -q -m "RustSec advisory-db snapshot $snap_commit"
    )
}

# snapshot_db ROOT: a throwaway git copy of the snapshot under ROOT, kept between runs while the
# snapshot's commit is the same (its stamp).
snapshot_db() {
    local dbroot=$1 dir=$1/$db_dir
    if [[ -d "$dir/.git" && "$(cat "$dbroot/.snapshot" 2>/dev/null)" == "$snap_commit" ]]; then
        return 0
    fi
    rm -rf "$dbroot"
    mkdir -p "$dir"
    cp -R "$snapshot/." "$dir/"
    chmod -R u+w "$dir"
    commit_db "$dir"
    printf '%s\n' "$snap_commit" >"$dbroot/.snapshot"
}

# seeded_db FROM ROOT CRATE: ROOT as FROM (hard links: git replaces files rather than writing in
# place, and the reflog is off) plus one crafted advisory against every version of CRATE.
seeded_db() {
    local from=$1/$db_dir dbroot=$2 crate=$3 dir=$2/$db_dir
    rm -rf "$dbroot"
    mkdir -p "$dbroot"
    cp -al "$from" "$dir"
    mkdir -p "$dir/crates/$crate"
    # The shape of the database's own EXAMPLE_ADVISORY.md (TOML front matter in a Markdown file
    # under crates/<name>/); synthetic, never published.
    cat >"$dir/crates/$crate/RUSTSEC-2099-0001.md" <<EOF
\`\`\`toml
[advisory]
id = "RUSTSEC-2099-0001"
package = "$crate"
date = "$snap_date"
url = "https://example.com/seeded-advisory"
categories = ["memory-corruption"]
keywords = ["seeded", "test"]

[versions]
patched = []
\`\`\`

# Seeded advisory: scripts/supply-chain.sh checks that the audit fails on it

Synthetic; it exists only in a throwaway copy of the database under target/tmp.
EOF
    commit_db "$dir"
}

# check_ignores CONFIG: step 2 over CONFIG's [advisories] ignore list.
check_ignores() {
    "$py" - "$1" <<'PY'
import datetime, re, sys, tomllib
cfg = tomllib.load(open(sys.argv[1], "rb"))
today = datetime.date.today()
bad = []
for entry in cfg.get("advisories", {}).get("ignore", []):
    if not isinstance(entry, dict) or "id" not in entry:
        bad.append(f"{entry!r}: write {{ id = \"RUSTSEC-...\", reason = \"expires YYYY-MM-DD: why\" }}")
        continue
    reason = entry.get("reason", "")
    m = re.fullmatch(r"expires (\d{4}-\d{2}-\d{2}): (\S.*)", reason)
    if not m or "\n" in reason:
        bad.append(f"{entry['id']}: the reason must be one line 'expires YYYY-MM-DD: why'")
        continue
    expires = datetime.date.fromisoformat(m.group(1))
    if expires < today:
        bad.append(f"{entry['id']}: the ignore expired on {expires}; fix the dependency or review it again")
for line in bad:
    print(f"supply-chain: {sys.argv[1]}: {line}", file=sys.stderr)
sys.exit(1 if bad else 0)
PY
}

deny() { # DBROOT CONFIG ARGS...: cargo-deny, offline, with the database root DBROOT
    local dbroot=$1 config=$2
    shift 2
    SR_ADVISORY_DB_ROOT="$dbroot" cargo deny --offline --locked --color never --config "$config" "$@"
}

failed=0
dbs="$target_dir/tmp/advisory-dbs"

# 1. The real snapshot: advisories, licenses, bans, sources.
snapshot_db "$dbs/snapshot"
if deny "$dbs/snapshot" deny.toml check --show-stats; then
    echo "supply-chain: cargo deny check ok (advisories as of $snap_date, licenses, bans, sources)"
else
    echo "supply-chain: cargo deny check FAILED" >&2
    failed=1
fi

# 2. The ignore list's reasons and expiry dates.
if check_ignores deny.toml; then
    echo "supply-chain: advisory ignores ok ($("$py" -c 'import sys,tomllib; print(len(tomllib.load(open(sys.argv[1],"rb"))["advisories"].get("ignore",[])))' deny.toml) in deny.toml, each with a reason and a future expiry)"
else
    failed=1
fi

# 3. The seeded advisory. `secrecy` holds every secret value (SPEC §8), a crate really in
#    Cargo.lock, linked into the function.
seed_crate=secrecy
grep -q "^name = \"$seed_crate\"$" Cargo.lock || {
    echo "supply-chain: $seed_crate is not in Cargo.lock; seed another crate" >&2
    exit 1
}
seeded_db "$dbs/snapshot" "$dbs/seeded" "$seed_crate"
work="$target_dir/tmp/supply-chain"
mkdir -p "$work"
log="$work/seeded.log"
if deny "$dbs/seeded" deny.toml check advisories >"$log" 2>&1; then
    cat "$log"
    echo "supply-chain: FAILED: the advisory check passed with a seeded advisory against $seed_crate" >&2
    failed=1
elif grep -q 'RUSTSEC-2099-0001' "$log"; then
    echo "supply-chain: seeded advisory RUSTSEC-2099-0001 against $seed_crate: the check fails, as it should"
else
    cat "$log"
    echo "supply-chain: FAILED: the check with a seeded advisory failed without naming it (see above)" >&2
    failed=1
fi
# The same advisory, ignored the way deny.toml allows: a future expiry passes both checks, a past
# one is refused by step 2.
"$py" - deny.toml "$work" <<'PY'
import datetime, re, sys
text = open(sys.argv[1]).read()
future = (datetime.date.today() + datetime.timedelta(days=30)).isoformat()
past = (datetime.date.today() - datetime.timedelta(days=1)).isoformat()
for name, date in (("ignored-future.toml", future), ("ignored-past.toml", past)):
    entry = f'ignore = [{{ id = "RUSTSEC-2099-0001", reason = "expires {date}: seeded by scripts/supply-chain.sh" }}]'
    out, n = re.subn(r"(?m)^ignore = \[\]$", entry, text)
    if n != 1:
        sys.exit("supply-chain: deny.toml has no 'ignore = []' line to seed (update the self-test)")
    open(f"{sys.argv[2]}/{name}", "w").write(out)
PY
if deny "$dbs/seeded" "$work/ignored-future.toml" check advisories >"$log" 2>&1 &&
    check_ignores "$work/ignored-future.toml"; then
    echo "supply-chain: the seeded advisory ignored until a future date: the check passes"
else
    cat "$log"
    echo "supply-chain: FAILED: an ignore with a reason and a future expiry did not pass" >&2
    failed=1
fi
if check_ignores "$work/ignored-past.toml" 2>/dev/null; then
    echo "supply-chain: FAILED: an ignore past its expiry date was accepted" >&2
    failed=1
else
    echo "supply-chain: the seeded advisory ignored with a past expiry: refused"
fi

if ((failed)); then
    echo "supply-chain: FAILED" >&2
    exit 1
fi
echo "supply-chain: all checks passed (advisory snapshot of $snap_date)"
