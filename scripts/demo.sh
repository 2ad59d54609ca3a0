#!/usr/bin/env bash
# scripts/demo.sh: replicate one secret end to end on this machine, with no AWS account.
#
#   moto (local Secrets Manager, IAM enforced)  <-  the function under `cargo lambda watch`
#                                               <-  `cargo lambda invoke` with a CloudTrail PutSecretValue event
#
# moto is the suites' emulator (tests/moto/server.py: corrected where it differs from AWS, IAM
# enforced), with the suites' identities: this script seeds and inspects as the admin; the
# function runs as a session of its role, holding exactly template.yaml's policy.
#
# Seeds app/prod/db in us-east-1, lets the function copy it to dr/app/prod/db in us-west-2
# through sedfiles/us-east-1-to-us-west-2.sed, prints both values side by side, then sends the
# same event again and checks that no new version was written. Exit 0 only if the copy is
# exactly what it should be. Everything it starts is stopped on exit; logs stay in target/demo/.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
work="$root/target/demo"

if [[ -t 1 && -z "${NO_COLOR:-}" ]]; then
    bold=$'\033[1m' green=$'\033[32m' red=$'\033[31m' off=$'\033[0m'
else
    bold='' green='' red='' off=''
fi
n=0
step() {
    n=$((n + 1))
    printf '\n%s==> [%d/9] %s%s\n' "$bold" "$n" "$*" "$off"
}
fail() {
    printf '\n%sDEMO FAILED: %s%s\n' "$red" "$*" "$off" >&2
    exit 1
}

# ---- processes: each runs in its own process group (setsid), stopped by group on exit ----------
pgroups=()
stop_group() { # PID: TERM the group, wait up to 5 s for it to go, then KILL what is left
    local pid=$1 i
    kill -TERM -- "-$pid" 2>/dev/null || return 0
    for ((i = 0; i < 50; i++)); do
        # members of the group that are not zombies
        [[ -z "$(ps -e -o pgid=,stat= | awk -v g="$pid" '$1 == g && $2 !~ /^Z/')" ]] && break
        sleep 0.1
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$? i
    trap - EXIT INT TERM
    for ((i = ${#pgroups[@]} - 1; i >= 0; i--)); do
        stop_group "${pgroups[i]}"
    done
    if ((rc != 0)) && [[ -f "$work/moto.log" ]]; then
        echo "Logs: $work/moto.log, $work/watch.log" >&2
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

start() { # LOG CMD...: starts CMD in a new session/process group; sets $started to its PID
    local log=$1
    shift
    setsid "$@" >"$log" 2>&1 </dev/null &
    started=$!
    pgroups+=("$started")
}

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# ---- a clean AWS environment: only what this script sets reaches boto3 and the function -------
while IFS= read -r var; do
    unset "$var"
done < <(compgen -e | grep -E '^(AWS_|REPLICATOR_|DEST_|TRANSFORMS$|SOURCE_MATCH$)' || true)
export AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true
export AWS_REGION=us-east-1

SOURCE_NAME=app/prod/db
DEST_NAME=dr/app/prod/db
TRANSFORM=sedfiles/us-east-1-to-us-west-2.sed
INITIAL_VALUE='{"engine":"postgres","host":"app-prod.cluster-c9abc1.us-east-1.rds.amazonaws.com","port":5432,"username":"app","password":"demo-v1-not-a-secret","kms_key":"arn:aws:kms:us-east-1:123456789012:alias/app-db","availability_zone":"us-east-1a"}'
SOURCE_VALUE='{"engine":"postgres","host":"app-prod.cluster-c9abc1.us-east-1.rds.amazonaws.com","port":5432,"username":"app","password":"demo-v2-not-a-secret","kms_key":"arn:aws:kms:us-east-1:123456789012:alias/app-db","availability_zone":"us-east-1a"}'
# What the sed file must make of it: whole region tokens swapped; the zone name us-east-1a kept.
EXPECTED_VALUE='{"engine":"postgres","host":"app-prod.cluster-c9abc1.us-west-2.rds.amazonaws.com","port":5432,"username":"app","password":"demo-v2-not-a-secret","kms_key":"arn:aws:kms:us-west-2:123456789012:alias/app-db","availability_zone":"us-east-1a"}'

# ------------------------------------------------------------------------------------------------
step "Tools: .venv with moto[server] and cargo-lambda (installed on the first run only: ~2 min)"
# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"
py="$root/.venv/bin/python"
aws() { "$py" "$root/scripts/demo_aws.py" "$@"; }
echo "moto $("$py" -c 'import moto; print(moto.__version__)'), $(cargo lambda --version)"
rm -rf "$work"
mkdir -p "$work"

# ------------------------------------------------------------------------------------------------
step "Build secret-replicator (debug; the first build compiles the AWS SDK: ~3-5 min on 2 cores, then seconds)"
# The same command line `cargo lambda watch` runs (`cargo run --bin secret-replicator`), so watch
# finds the binary up to date and the first invocation does not wait for a compile.
cargo build --bin secret-replicator
# The emulator's identities (tests/common/iam_setup.rs) and their credentials.
eval "$(cargo run -q --example moto_iam_setup -- "$work/iam-setup.json")"
export AWS_ACCESS_KEY_ID=$ADMIN_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY=$ADMIN_SECRET_ACCESS_KEY

# ------------------------------------------------------------------------------------------------
step "Start moto (local AWS, IAM enforced) on a free loopback port"
# Port 0: the server binds a free port itself and writes it to moto.port once it listens.
start "$work/moto.log" env MOTO_PORT_FILE="$work/moto.port" \
    MOTO_IAM_SETUP="$work/iam-setup.json" MOTO_IAM_LOG="$work/iam-calls.jsonl" \
    "$py" "$root/tests/moto/server.py" -H 127.0.0.1 -p 0
moto_pid=$started
moto_ok=''
for ((i = 0; i < 300; i++)); do
    if [[ -s "$work/moto.port" ]] &&
        curl -sf -o /dev/null "http://127.0.0.1:$(cat "$work/moto.port")/moto-api/data.json"; then
        moto_ok=1
        break
    fi
    kill -0 "$moto_pid" 2>/dev/null || break
    sleep 0.1
done
[[ -n "$moto_ok" ]] || { tail -n 20 "$work/moto.log" >&2; fail "moto did not answer"; }
moto_port=$(cat "$work/moto.port")
export AWS_ENDPOINT_URL="http://127.0.0.1:$moto_port"
echo "moto pid $moto_pid, $AWS_ENDPOINT_URL (IAM checks logged in $work/iam-calls.jsonl)"

# ------------------------------------------------------------------------------------------------
step "Seed the source secret $SOURCE_NAME in us-east-1 (create, then PutSecretValue)"
seeded=$(aws seed "$SOURCE_NAME" us-east-1 "$INITIAL_VALUE" "$SOURCE_VALUE")
source_arn=$("$py" -c 'import json,sys; print(json.load(sys.stdin)["arn"])' <<<"$seeded")
echo "source ARN: $source_arn"
echo "value:      $SOURCE_VALUE"
aws event "$source_arn" "$SOURCE_NAME" us-east-1 123456789012 >"$work/event.json"
echo "event:      $work/event.json (EventBridge 'AWS API Call via CloudTrail', PutSecretValue by jdoe)"

# ------------------------------------------------------------------------------------------------
step "Start the function under 'cargo lambda watch' (local Lambda runtime)"
invoke_port=$(free_port)
watch_env=(
    "AWS_ENDPOINT_URL=$AWS_ENDPOINT_URL"
    "AWS_REGION=us-east-1"
    "AWS_ACCESS_KEY_ID=$FUNCTION_ACCESS_KEY_ID"
    "AWS_SECRET_ACCESS_KEY=$FUNCTION_SECRET_ACCESS_KEY"
    "AWS_SESSION_TOKEN=$FUNCTION_SESSION_TOKEN"
    "REPLICATOR_ROLE_ARN=$FUNCTION_ROLE_ARN"
    "AWS_EC2_METADATA_DISABLED=true"
    "DEST_REGION=us-west-2"
    "DEST_SECRET_NAME=dr/\${SECRET_NAME}"
    "TRANSFORMS=$TRANSFORM"
)
echo "function environment (the SPEC §2 shorthand for one destination):"
printf '  %s\n' "${watch_env[@]}"
watch_args=()
for kv in "${watch_env[@]}"; do watch_args+=(--env-var "$kv"); done
start "$work/watch.log" cargo lambda watch --ignore-changes \
    --invoke-address 127.0.0.1 --invoke-port "$invoke_port" "${watch_args[@]}"
watch_pid=$started
# Ready when the port accepts a connection (an HTTP request would invoke a function).
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
for ((i = 0; i < 600; i++)); do
    listening "$invoke_port" && break
    kill -0 "$watch_pid" 2>/dev/null || { cat "$work/watch.log" >&2; fail "cargo lambda watch exited"; }
    sleep 0.1
done
listening "$invoke_port" || { cat "$work/watch.log" >&2; fail "cargo lambda watch did not listen on port $invoke_port"; }
echo "cargo lambda watch pid $watch_pid, invoke port $invoke_port (function log: $work/watch.log)"

invoke() { # OUTFILE: sends event.json; prints the result document; returns invoke's status
    local out=$1 rc=0
    timeout 600 cargo lambda invoke secret-replicator \
        --invoke-address 127.0.0.1 --invoke-port "$invoke_port" \
        --data-file "$work/event.json" >"$out" 2>"$out.err" </dev/null || rc=$?
    if ((rc == 0)); then
        "$py" -m json.tool "$out" 2>/dev/null || cat "$out"
    else
        cat "$out" "$out.err"
        printf '%s(cargo lambda invoke exited %d; function log follows)%s\n' "$red" "$rc" "$off"
        tail -n 30 "$work/watch.log"
    fi
    return "$rc"
}

# ------------------------------------------------------------------------------------------------
step "Invoke: cargo lambda invoke secret-replicator --data-file event.json"
rc1=0
invoke "$work/result1.json" || rc1=$?
src=$(aws state "$SOURCE_NAME" us-east-1)
dst=$(aws state "$DEST_NAME" us-west-2)
field() { "$py" -c 'import json,sys; v = json.loads(sys.argv[1])[sys.argv[2]]; print("" if v is None else v)' "$@"; }
dst_value=$(field "$dst" value)
dst_versions=$(field "$dst" versions)
dst_current=$(field "$dst" currentVersion)

# ------------------------------------------------------------------------------------------------
step "Source (us-east-1 $SOURCE_NAME) next to its copy (us-west-2 $DEST_NAME)"
[[ -n "$dst_value" ]] || fail "no secret $DEST_NAME in us-west-2 after the invocation"
aws compare "us-east-1 $SOURCE_NAME" "$(field "$src" value)" "us-west-2 $DEST_NAME" "$dst_value"
echo "destination: $dst_versions version(s), AWSCURRENT = $dst_current"
if [[ "$dst_value" != "$EXPECTED_VALUE" ]]; then
    printf 'expected: %s\nactual:   %s\n' "$EXPECTED_VALUE" "$dst_value"
    fail "the destination value is not the transformed source value"
fi
((rc1 == 0)) || fail "the invocation returned an error (the copy is right, though)"
printf '%sOK: the copy is the source value with us-east-1 rewritten to us-west-2%s\n' "$green" "$off"

# ------------------------------------------------------------------------------------------------
step "Invoke again with the same event (EventBridge delivers at least once)"
invoke "$work/result2.json" || fail "the duplicate invocation failed"
dst2=$(aws state "$DEST_NAME" us-west-2)
dst2_versions=$(field "$dst2" versions)
dst2_current=$(field "$dst2" currentVersion)
echo "destination: $dst2_versions version(s), AWSCURRENT = $dst2_current"
[[ "$(field "$dst2" value)" == "$EXPECTED_VALUE" ]] || fail "the destination value changed"
if [[ "$dst2_versions" != "$dst_versions" || "$dst2_current" != "$dst_current" ]]; then
    fail "the duplicate event wrote a new version ($dst_versions -> $dst2_versions)"
fi
printf '%sOK: the duplicate event wrote no new version%s\n' "$green" "$off"

# ------------------------------------------------------------------------------------------------
step "Stop cargo lambda watch and moto"
stop_group "$watch_pid"
stop_group "$moto_pid"
pgroups=()
printf '%sDemo passed.%s Logs: target/demo/\n' "$green" "$off"
