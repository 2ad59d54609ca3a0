#!/usr/bin/env bash
# Ensures the repository's git-ignored `.tools/` holds the pinned cargo tools of the supply-chain
# checks, compiled from crates.io (`cargo install --locked --root .tools`; CI reaches no other
# host, so prebuilt downloads such as `cargo binstall` cannot work). One line of why for each:
#   cargo-deny       advisories (offline, against ../shared/advisory-db), licenses, bans, sources
#                    of Cargo.lock in one tool (scripts/supply-chain.sh)
#   cargo-auditable  embeds the dependency list in the bootstrap (a `.dep-v0` section), so that
#                    `cargo audit bin`, Trivy, Syft and Amazon Inspector can check the binary itself
#   rust-audit-info  reads that section back the way scanners do (the same project's reader), so
#                    CI can check the bootstrap it builds names its crates
#   cargo-cyclonedx  the CycloneDX SBOM beside the release zip (scripts/release.sh only; CI does
#                    not install it)
#
# Usage: scripts/tools.sh [TOOL...]   (no argument: the tools CI needs). Sourcing it
# (`. scripts/tools.sh`) also puts .tools/bin on PATH. Idempotent: a stamp per tool records the
# pinned version installed, so a second run returns at once; edit a pin and the next run
# reinstalls that tool. Measured first installs are in the README's "Supply chain" section.

# The pins (crate@version). Bump deliberately: a new cargo-deny may change what passes.
_sr_tool_pin() {
    case "$1" in
    cargo-deny) echo cargo-deny@0.20.2 ;;
    cargo-auditable) echo cargo-auditable@0.7.7 ;;
    rust-audit-info) echo rust-audit-info@0.5.4 ;;
    cargo-cyclonedx) echo cargo-cyclonedx@0.5.9 ;;
    *) return 1 ;;
    esac
}

_sr_tools_ensure() {
    local root tools tool pin stamp log start
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    tools="$root/.tools"
    local -a want=("$@")
    ((${#want[@]})) || want=(cargo-deny cargo-auditable rust-audit-info)
    mkdir -p "$tools"
    for tool in "${want[@]}"; do
        pin=$(_sr_tool_pin "$tool") || {
            echo "tools.sh: unknown tool '$tool'" >&2
            return 1
        }
        # The stamp records the pin and the build flavour below (v2: the quick profile).
        pin="$pin v2"
        stamp="$tools/.stamp-$tool"
        # Fast path: installed at the pinned version.
        if [[ -f "$stamp" && "$(cat "$stamp")" == "$pin" && -x "$tools/bin/$tool" ]]; then
            continue
        fi
        (
            # One installer at a time (scripts/check-deploy.sh and scripts/supply-chain.sh may
            # both ask for cargo-auditable).
            flock 9
            if [[ -f "$stamp" && "$(cat "$stamp")" == "$pin" && -x "$tools/bin/$tool" ]]; then
                exit 0
            fi
            log="$tools/install-$tool.log"
            start=$SECONDS
            echo "tools.sh: cargo install --locked ${pin% *} into .tools (first run only)" >&2
            # Its own target directory, removed afterwards: the tool's build must not mix with
            # the project's target/ (other checkouts may share that one). The tools' own release
            # profiles are built for speed at run time (cargo-deny 0.20: fat LTO, one codegen
            # unit, a long single-threaded link); a tool that runs for seconds gains nothing
            # from that, so the install builds with thin-local LTO, 16 units and opt-level 1.
            if ! env CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
                CARGO_PROFILE_RELEASE_OPT_LEVEL=1 \
                cargo install --locked --root "$tools" --target-dir "$tools/build" "${pin% *}" >"$log" 2>&1; then
                tail -n 30 "$log" >&2
                echo "tools.sh: cargo install ${pin% *} failed (full log: $log)" >&2
                exit 1
            fi
            rm -rf "$tools/build"
            printf '%s\n' "$pin" >"$stamp"
            echo "tools.sh: ${pin% *} installed in $((SECONDS - start)) s" >&2
        ) 9>"$tools/.lock" || return 1
    done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
    # Executed.
    set -euo pipefail
    _sr_tools_ensure "$@"
else
    # Sourced: ensure, then put the tools on PATH.
    _sr_tools_ensure "$@" || return 1
    case ":$PATH:" in
    *":$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/bin:"*) ;;
    *) PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.tools/bin:$PATH" ;;
    esac
    export PATH
fi
