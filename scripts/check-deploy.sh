#!/usr/bin/env bash
# Lints the deployment artefacts. Exit 0 only when every check passes:
#   cfn-lint              template.yaml and the CloudFormation templates under iam/ (among them
#                         iam/destination-role.yaml, the destination role's StackSet)
#   sam validate --lint   template.yaml (SAM transform + cfn-lint rules; offline, dummy credentials)
#   parliament            every identity policy under iam/ (*.json without a Principal); trust and
#                         key policies, which parliament cannot judge, are checked by tests/iam_policies.rs
#   checkov               template.yaml and iam/*.yaml, offline (--skip-download); each finding is
#                         fixed or skipped inline in the template's Metadata with a one-line reason
#   validate              every example configuration under examples/ (*.json), with the release
#                         or debug build of the binary (`secret-replicator validate --config F`)
#   sam build             the template's build (release, arm64), as before a deploy, with
#                         cargo-auditable: the bootstrap's embedded dependency list must name the
#                         crates as Cargo.lock pins them (scripts/supply-chain.sh bin)
#
# Tools come from PyPI, installed on first use (idempotent; a stamp file makes later runs start at
# once): cfn-lint and parliament into the repository's `.venv`; aws-sam-cli into its own venv
# `.venv/sam`, because its pins (boto3, botocore, ...) would otherwise move the versions moto uses;
# checkov into `.venv/checkov` for the same reason. cargo-auditable and rust-audit-info (for the
# sam build's dependency list) come from crates.io into `.tools/` (scripts/tools.sh).
# Needs python3 (3.9+) and cargo. No AWS account, network or credentials beyond PyPI.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$root/.venv"
samvenv="$venv/sam"
stamp="$venv/.check-deploy-tools"
tools=('cfn-lint>=1.58,<2' 'parliament>=1.6,<2')
samtools=('aws-sam-cli>=1.170,<2')
ckvenv="$venv/checkov"
ckvtools=('checkov==3.3.30')

py=$(command -v python3 || true)
[[ -n "$py" ]] || {
    echo "check-deploy: python3 not found" >&2
    exit 1
}
want="v2 ${tools[*]} ${samtools[*]} ${ckvtools[*]} $("$py" -c 'import sys; print(sys.version.split()[0])')"

ready() {
    [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -x "$venv/bin/cfn-lint" &&
        -x "$venv/bin/parliament" && -x "$samvenv/bin/sam" && -x "$ckvenv/bin/checkov" ]] &&
        "$venv/bin/python" -c '' 2>/dev/null && "$samvenv/bin/python" -c '' 2>/dev/null &&
        "$ckvenv/bin/python" -c '' 2>/dev/null
}

if ! ready; then
    mkdir -p "$venv"
    (
        # One installer at a time (shares the lock of scripts/venv.sh).
        flock 9
        ready && exit 0
        log="$venv/check-deploy-install.log"
        : >"$log"
        echo "check-deploy: installing ${tools[*]}, ${samtools[*]} and ${ckvtools[*]} (first run only; 2-4 minutes)" >&2
        export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1
        if ! "$venv/bin/python" -c '' 2>/dev/null; then
            "$py" -m venv "$venv" >>"$log" 2>&1
        fi
        if ! "$samvenv/bin/python" -c '' 2>/dev/null; then
            "$py" -m venv --clear "$samvenv" >>"$log" 2>&1
        fi
        if ! "$ckvenv/bin/python" -c '' 2>/dev/null; then
            "$py" -m venv --clear "$ckvenv" >>"$log" 2>&1
        fi
        {
            "$venv/bin/python" -m pip install --progress-bar off "${tools[@]}" &&
                "$samvenv/bin/python" -m pip install --progress-bar off "${samtools[@]}" &&
                "$ckvenv/bin/python" -m pip install --progress-bar off "${ckvtools[@]}"
        } >>"$log" 2>&1 || {
            tail -n 30 "$log" >&2
            echo "check-deploy: pip install failed (full log: $log)" >&2
            exit 1
        }
        printf '%s\n' "$want" >"$stamp"
    ) 9>"$venv/.lock"
fi

cd "$root"
failed=0

# 1. cfn-lint: the SAM template and the destination-account template(s), among them the
#    StackSet template of the destination role (iam/destination-role.yaml), which must exist.
cfn_targets=(template.yaml)
while IFS= read -r f; do cfn_targets+=("$f"); done < <(find iam -maxdepth 1 -name '*.yaml' | sort)
if [[ ! -f iam/destination-role.yaml ]]; then
    echo "check-deploy: iam/destination-role.yaml (the destination-role StackSet) is missing" >&2
    failed=1
fi
if out=$("$venv/bin/cfn-lint" "${cfn_targets[@]}" 2>&1); then
    echo "check-deploy: cfn-lint ok (${cfn_targets[*]})"
else
    printf '%s\n' "$out"
    echo "check-deploy: cfn-lint FAILED" >&2
    failed=1
fi

# 2. sam validate --lint: offline; SAM only needs a region and some credentials to start.
if out=$(cd "$root" && env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_CONFIG_FILE \
    AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
    AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE AWS_SECRET_ACCESS_KEY=not-a-real-key \
    SAM_CLI_TELEMETRY=0 \
    "$samvenv/bin/sam" validate --lint --template-file template.yaml 2>&1); then
    echo "check-deploy: sam validate --lint ok"
else
    printf '%s\n' "$out"
    echo "check-deploy: sam validate --lint FAILED" >&2
    failed=1
fi

# 3. checkov: offline (--skip-download fetches no guidelines or policies), no telemetry. The IAM
#    documents under iam/*.json are identity and trust policies, which checkov has no framework
#    for outside a template: parliament and tests/iam_policies.rs judge them.
if out=$(env BC_SKIP_MAPPING=TRUE CHECKOV_RUN_SCA_PACKAGE_SCAN_V2=false \
    "$ckvenv/bin/checkov" --skip-download --framework cloudformation --compact --quiet \
    $(printf -- '-f %s ' "${cfn_targets[@]}") 2>&1); then
    echo "check-deploy: checkov ok ($(printf '%s' "$out" | grep -o 'Passed checks: [0-9]*, Failed checks: [0-9]*, Skipped checks: [0-9]*' | head -n1))"
else
    printf '%s\n' "$out"
    echo "check-deploy: checkov FAILED" >&2
    failed=1
fi

# 4. parliament: identity policies (documents without a Principal) under iam/.
identity=()
while IFS= read -r f; do
    if "$venv/bin/python" - "$f" <<'PY'; then identity+=("$f"); fi
import json, sys
doc = json.load(open(sys.argv[1]))
st = doc.get("Statement", [])
st = [st] if isinstance(st, dict) else st
sys.exit(1 if any("Principal" in s or "NotPrincipal" in s for s in st) else 0)
PY
done < <(find iam -maxdepth 1 -name '*.json' | sort)
if ((${#identity[@]} == 0)); then
    echo "check-deploy: no identity policy under iam/" >&2
    failed=1
fi
for f in "${identity[@]}"; do
    # --files, not --file: parliament refuses --file whenever stdin is not a terminal (CI).
    if out=$("$venv/bin/parliament" --files "$f" </dev/null 2>&1) && [[ -z "$out" ]]; then
        echo "check-deploy: parliament ok ($f)"
    else
        printf '%s\n' "$out"
        echo "check-deploy: parliament FAILED ($f)" >&2
        failed=1
    fi
done

# 5. The example configurations (examples/*.json) pass the binary's own `validate`: the release
#    build or the debug one, whichever is newer (a debug build is made when there is neither).
target="${CARGO_TARGET_DIR:-$root/target}"
bin=""
for b in "$target/release/secret-replicator" "$target/debug/secret-replicator"; do
    if [[ -x "$b" && (-z "$bin" || "$b" -nt "$bin") ]]; then bin=$b; fi
done
if [[ -z "$bin" ]]; then
    echo "check-deploy: building the secret-replicator binary (debug) to validate examples/" >&2
    if cargo build --quiet --bin secret-replicator; then
        bin="$target/debug/secret-replicator"
    else
        echo "check-deploy: cargo build FAILED" >&2
        failed=1
    fi
fi
examples=()
while IFS= read -r f; do examples+=("$f"); done < <(find examples -maxdepth 1 -name '*.json' | sort)
if ((${#examples[@]} == 0)); then
    echo "check-deploy: no example configuration under examples/" >&2
    failed=1
fi
if [[ -n "$bin" ]]; then
    for f in "${examples[@]}"; do
        # Relative transform paths (sedfiles/...) resolve from the repository root, as in the
        # package root on Lambda; no AWS access (the examples name no secret).
        if out=$(env -i PATH="$PATH" AWS_REGION=us-east-1 AWS_EC2_METADATA_DISABLED=true \
            "$bin" validate --config "$f" 2>&1); then
            echo "check-deploy: validate ok ($f: ${out##*$'\n'})"
        else
            printf '%s\n' "$out"
            echo "check-deploy: validate FAILED ($f)" >&2
            failed=1
        fi
    done
fi

# 6. sam build: what `sam build` does before a deploy (the template's rust-cargolambda build:
#    `cargo lambda build --release --arm64`, cross-compiled with the zig that cargo-lambda brings
#    into .venv), so that a change breaking the SAM build fails here. Telemetry off; the result
#    must be an aarch64 ELF. SAM CLI >= 1.156 (rust-cargolambda out of beta). SKIP_SAM_BUILD=1
#    skips it (quick local runs; CI never sets it).
#    The build is auditable: SAM runs `cargo lambda build` with this environment (aws-lambda-builders'
#    rust_cargo workflow copies os.environ), so the two variables of `cargo auditable build`
#    (cargo-auditable 0.7.7, src/cargo_auditable.rs) make cargo-auditable embed the dependency
#    list in the bootstrap; scripts/supply-chain.sh bin then checks that it names its crates as
#    Cargo.lock pins them. scripts/release.sh builds the same way.
if [[ "${SKIP_SAM_BUILD:-}" == 1 ]]; then
    echo "check-deploy: sam build skipped (SKIP_SAM_BUILD=1)"
else
    # shellcheck source=scripts/venv.sh
    . "$root/scripts/venv.sh"
    # shellcheck source=scripts/tools.sh
    . "$root/scripts/tools.sh" cargo-auditable rust-audit-info
    t0=$SECONDS
    log="$root/target/sam-build.log"
    mkdir -p "$root/target"
    if env SAM_CLI_TELEMETRY=0 AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 \
        RUSTC_WORKSPACE_WRAPPER="$root/.tools/bin/cargo-auditable" \
        CARGO_AUDITABLE_ORIG_ARGS='{"offline":false,"locked":true,"frozen":false,"config":[]}' \
        "$samvenv/bin/sam" build --template-file template.yaml >"$log" 2>&1; then
        boot="$root/.aws-sam/build/Function/bootstrap"
        if [[ -f "$boot" ]] && "$venv/bin/python" - "$boot" <<'PY'; then
import sys
head = open(sys.argv[1], "rb").read(20)
# ELF magic, then e_machine (bytes 18-19, little-endian) 0xB7 = AArch64.
sys.exit(0 if head[:4] == b"\x7fELF" and head[18:20] == b"\xb7\x00" else 1)
PY
            echo "check-deploy: sam build ok ($((SECONDS - t0)) s; .aws-sam/build/Function/bootstrap, aarch64, $(wc -c <"$boot") bytes)"
            # What `cargo audit bin` and the scanners read: the embedded dependency list.
            if ! bash "$root/scripts/supply-chain.sh" bin "$boot" aarch64-unknown-linux-gnu; then
                echo "check-deploy: the bootstrap's embedded dependency list FAILED its check" >&2
                failed=1
            fi
        else
            echo "check-deploy: sam build produced no aarch64 bootstrap (log: $log)" >&2
            failed=1
        fi
    else
        tail -n 30 "$log"
        echo "check-deploy: sam build FAILED (log: $log)" >&2
        failed=1
    fi
fi

if ((failed)); then
    echo "check-deploy: FAILED" >&2
    exit 1
fi
echo "check-deploy: all deployment checks passed"
