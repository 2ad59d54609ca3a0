#!/usr/bin/env bash
# scripts/test.sh: the whole check suite, as CI runs it (.ci/run calls exactly this).
#
#   1. .venv with moto[server], cargo-lambda     (scripts/venv.sh; the integration tests start
#                                                  tests/moto/server.py on loopback ports)
#   2. cargo fmt --all -- --check
#   3. scripts/supply-chain.sh                    (cargo-deny, offline: advisories against the
#                                                  RustSec snapshot in ../shared/advisory-db,
#                                                  licenses, bans, sources; a seeded advisory must
#                                                  fail it; tools compiled into .tools/ once)
#   4. scripts/check-deploy.sh                    (deployment linters: cfn-lint, sam validate,
#                                                  parliament; it installs them on first use; its
#                                                  sam build is auditable and its bootstrap's
#                                                  embedded dependency list is checked)
#   5. cargo clippy --all-targets -- -D warnings
#   6. scripts/demo.sh as a smoke test            (its output goes to target/demo.log; skip it
#                                                  with SKIP_DEMO=1)
#   7. cargo nextest run --all-targets --no-fail-fast   (cargo test --all-targets without nextest;
#                                                  first it empties target/tmp/iam-calls/, where
#                                                  the IAM-enforcing moto records every call)
#   8. cargo nextest run --test iam_recorded --run-ignored only   (cargo test --test iam_recorded
#                                                  -- --ignored without nextest: the calls step 7
#                                                  recorded, decided with the policies'
#                                                  conditions; fails when nothing was recorded)
#
# Every step runs even when an earlier one failed, so one run reports everything; the exit
# status is non-zero when any step failed. The test runner goes last so that its summary line
# closes the output.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    bold=$'\033[1m' red=$'\033[31m' off=$'\033[0m'
else
    bold='' red='' off=''
fi
failed=()
t0=$SECONDS
step() { printf '\n%s==> %s%s\n' "$bold" "$*" "$off"; }
run() { # NAME CMD...: runs a step, records a failure
    local name=$1 start=$SECONDS rc=0
    shift
    "$@" || rc=$?
    if ((rc == 0)); then
        echo "--- $name: ok ($((SECONDS - start)) s)"
    else
        failed+=("$name")
        printf '%s--- %s: FAILED (exit %d, %d s)%s\n' "$red" "$name" "$rc" "$((SECONDS - start))" "$off"
    fi
}

step "Tools: .venv (moto[server], cargo-lambda)"
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
echo "moto: $("$root/.venv/bin/python" -c 'import moto; print(moto.__version__)') via tests/moto/server.py; $(cargo --version); $(rustc --version)"

step "cargo fmt --all -- --check"
run fmt cargo fmt --all -- --check

step "scripts/supply-chain.sh (advisories offline, licenses, bans, sources; first run compiles cargo-deny: minutes)"
run supply-chain bash scripts/supply-chain.sh

if [[ -f scripts/check-deploy.sh ]]; then
    step "scripts/check-deploy.sh (deployment linters; first run installs them: 1-3 min)"
    run deploy-lint bash scripts/check-deploy.sh
fi

step "cargo clippy --all-targets -- -D warnings (first run builds the dependencies: several minutes)"
run clippy cargo clippy --all-targets -- -D warnings

if [[ "${SKIP_DEMO:-}" != 1 ]]; then
    step "scripts/demo.sh (smoke: moto + cargo lambda watch/invoke; output in target/demo.log)"
    demo() {
        local rc=0
        mkdir -p target
        scripts/demo.sh >target/demo.log 2>&1 </dev/null || rc=$?
        if ((rc == 0)); then
            grep -E '^(OK|Demo passed)' target/demo.log
        else
            tail -n 60 target/demo.log
        fi
        return "$rc"
    }
    run demo demo
fi

# Doc tests: nextest does not run them, and `--all-targets` leaves them out; run them only when
# the crate has any (a doc-test run over none would print a "0 passed" summary).
if grep -rqE '^\s*//[/!].*```' src; then
    step "cargo test --doc"
    run doctests cargo test --doc
fi

# Last, and silent on success after the runner's own summary line. The recordings of an earlier
# run must not count for this one: the recorded-calls check reads whatever the directory holds.
target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
rm -rf "${target_dir:?}/tmp/iam-calls"
if cargo nextest --version >/dev/null 2>&1; then
    step "cargo nextest run --all-targets --no-fail-fast"
    tests=(cargo nextest run --all-targets --no-fail-fast)
    recorded=(cargo nextest run --test iam_recorded --run-ignored only)
else
    step "cargo test --all-targets --no-fail-fast (cargo-nextest not installed)"
    tests=(cargo test --all-targets --no-fail-fast)
    recorded=(cargo test --test iam_recorded -- --ignored)
fi
rc=0
"${tests[@]}" || rc=$?
((rc == 0)) || failed+=(tests)

step "${recorded[*]} (the recorded calls against the policies' conditions; SPEC §11)"
rc=0
"${recorded[@]}" || rc=$?
((rc == 0)) || failed+=(iam-recorded)

if ((${#failed[@]})); then
    printf '\n%stest.sh: FAILED: %s (%d s in all)%s\n' "$red" "${failed[*]}" "$((SECONDS - t0))" "$off" >&2
    exit 1
fi
