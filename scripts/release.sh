#!/usr/bin/env bash
# scripts/release.sh: the deployable artifact, as the README's path C builds it
# (`cargo lambda build --release --arm64`), plus what an operator needs to scan it:
#
#   target/lambda/secret-replicator/bootstrap.zip           the function (bootstrap + sedfiles/)
#   target/lambda/secret-replicator/secret-replicator.cdx.json   its CycloneDX SBOM (JSON)
#
# The bootstrap is built with cargo-auditable, so it carries its own dependency list (a `.dep-v0`
# section): `cargo audit bin`, Trivy, Syft and Amazon Inspector read it from the binary, with no
# lock file at hand. Before it returns, the script reads that list back out of the bootstrap in
# the zip (scripts/supply-chain.sh bin) and fails unless it names its crates as Cargo.lock pins
# them. SAM deployments (`sam build`) get the same embedded list: scripts/check-deploy.sh
# builds with the same wrapper, and CI checks that bootstrap.
#
# Tools: cargo-lambda (scripts/venv.sh); cargo-auditable, rust-audit-info and cargo-cyclonedx
# (scripts/tools.sh, compiled into .tools/ on first use). A release build of the AWS SDK for
# arm64 takes several minutes the first time.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
# shellcheck source=scripts/tools.sh
. "$root/scripts/tools.sh" cargo-auditable rust-audit-info cargo-cyclonedx

target="${CARGO_TARGET_DIR:-$root/target}"
out="$target/lambda/secret-replicator"
triple=aarch64-unknown-linux-gnu
t0=$SECONDS

# `cargo auditable build` is `cargo build` with two variables set (cargo-auditable 0.7.7,
# src/cargo_auditable.rs): RUSTC_WORKSPACE_WRAPPER, its own binary, which adds the section when
# the root crate links; and CARGO_AUDITABLE_ORIG_ARGS, the cargo flags it passes on to its
# `cargo metadata` call. Setting them here lets `cargo lambda build` (and `sam build`, which runs
# it) do the build unchanged; scripts/check-deploy.sh does the same.
echo "release: cargo lambda build --release --arm64 --output-format zip --include sedfiles (auditable)"
RUSTC_WORKSPACE_WRAPPER="$root/.tools/bin/cargo-auditable" \
    CARGO_AUDITABLE_ORIG_ARGS='{"offline":false,"locked":true,"frozen":false,"config":[]}' \
    cargo lambda build --release --arm64 --locked --output-format zip --include sedfiles

zip="$out/bootstrap.zip"
[[ -f "$zip" ]] || {
    echo "release: $zip missing after the build" >&2
    exit 1
}

# The check reads the bootstrap that ships, out of the zip.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
"$root/.venv/bin/python" - "$zip" "$tmp/bootstrap" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[2], "wb") as f:
    f.write(z.read("bootstrap"))
PY
bash "$root/scripts/supply-chain.sh" bin "$tmp/bootstrap" "$triple"

# The SBOM, beside the zip: CycloneDX 1.5 JSON (the version Amazon Inspector's ScanSbom API
# takes) of the package's dependency graph for the Lambda target, without dev-dependencies
# (cargo-cyclonedx leaves them out).
(cd "$root" && cargo cyclonedx --format json --spec-version 1.5 --target "$triple" --override-filename secret-replicator.cdx)
sbom="$root/secret-replicator.cdx.json"
[[ -f "$sbom" ]] || {
    echo "release: cargo cyclonedx wrote no $sbom" >&2
    exit 1
}
mv -f "$sbom" "$out/secret-replicator.cdx.json"
echo "release: done in $((SECONDS - t0)) s"
ls -l "$zip" "$out/secret-replicator.cdx.json"
