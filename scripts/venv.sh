#!/usr/bin/env bash
# Ensures the repository's git-ignored Python virtualenv `.venv` holds the developer tools:
#   moto[server]  moto_server, a local AWS emulator (Secrets Manager, KMS, STS) for the tests and the demo
#   cargo-lambda  `cargo lambda watch` (a local Lambda runtime) and `cargo lambda invoke`
# (scripts/check-deploy.sh adds its own linters, under the same lock.)
#
# Run it (`scripts/venv.sh`) or source it (`. scripts/venv.sh`); sourcing also puts .venv/bin on
# PATH, which `cargo lambda ...` needs (cargo finds the `cargo-lambda` binary on PATH).
# Idempotent: a stamp file records what was installed, so a second run returns at once. Edit the
# pins below and the next run reinstalls. Needs python3 (3.9+) and PyPI; nothing else.

_sr_venv_ensure() {
    local root venv stamp want
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    venv="$root/.venv"
    stamp="$venv/.secret-replicator-tools"
    # moto is pinned: tests/moto/server.py patches its internals (each patch cites its AWS page).
    # cargo-lambda brings `ziglang` (zig, for `cargo lambda build --arm64` cross builds).
    local -a pkgs=('moto[server]==5.2.5' 'cargo-lambda>=1.9,<2')
    want="v3 ${pkgs[*]}"

    # Fast path: nothing to do.
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/moto_server" &&
        -x "$venv/bin/cargo-lambda" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
        return 0
    fi

    mkdir -p "$venv"
    (
        # One installer at a time (scripts/demo.sh and scripts/test.sh may start together).
        flock 9
        if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/moto_server" &&
            -x "$venv/bin/cargo-lambda" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
            exit 0
        fi
        echo "venv.sh: installing ${pkgs[*]} into .venv (first run only; about 2 minutes)" >&2
        log="$venv/install.log"
        : >"$log"
        if ! "$venv/bin/python" -c '' 2>/dev/null; then
            py=$(command -v python3) || {
                echo "venv.sh: python3 not found; install Python 3.9+ first" >&2
                exit 1
            }
            # Missing or broken (e.g. the Python it was made with is gone): make it anew.
            "$py" -m venv --clear "$venv" >"$log" 2>&1 || {
                cat "$log" >&2
                echo "venv.sh: '$py -m venv' failed (on Debian: apt-get install python3-venv)" >&2
                exit 1
            }
        fi
        export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
        "$venv/bin/python" -m pip install --progress-bar off "${pkgs[@]}" >>"$log" 2>&1 || {
            tail -n 40 "$log" >&2
            echo "venv.sh: pip install failed (full log: $log)" >&2
            exit 1
        }
        for bin in moto_server cargo-lambda; do
            [[ -x "$venv/bin/$bin" ]] || {
                echo "venv.sh: $venv/bin/$bin missing after install (log: $log)" >&2
                exit 1
            }
        done
        printf '%s\n' "$want" >"$stamp"
        echo "venv.sh: .venv ready" >&2
    ) 9>"$venv/.lock"
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # Executed.
    set -euo pipefail
    _sr_venv_ensure
else
    # Sourced: ensure, then put the tools on PATH.
    _sr_venv_ensure || return 1
    case ":$PATH:" in
    *":$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin:"*) ;;
    *) PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin:$PATH" ;;
    esac
    export PATH
fi
