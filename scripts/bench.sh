#!/usr/bin/env bash
# scripts/bench.sh: the performance table of the README, measured on this machine.
#
#   1. .venv with moto[server] and cargo-lambda            (scripts/venv.sh)
#   2. cargo lambda build --release --arm64                  (the deployable bootstrap, for its size)
#   3. python3 benches/python_transform.py                   (the same transform workloads in
#                                                             Python's `re`, for the peer column)
#   4. cargo bench --bench replicator                        (start-up, memory, calls, latency,
#                                                             `all` throughput, transforms; starts
#                                                             its own moto servers on loopback)
#
# The table goes to stdout and to target/bench.md; progress goes to stderr. A cold run builds
# the AWS SDK twice (arm64 and x86_64 release): about 10 minutes on 2 cores, then about 3 minutes
# of measuring plus about 15-20 minutes for `all` at estate size. Sizes: BENCH_STARTS (21),
# BENCH_WARM (500), BENCH_ALL (10000), BENCH_LINK_SECONDS (300).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

# shellcheck source=scripts/venv.sh
. "$root/scripts/venv.sh"

mkdir -p target
echo "bench.sh: cargo lambda build --release --arm64 (log: target/bench-build.log)" >&2
if cargo lambda build --release --arm64 >target/bench-build.log 2>&1; then
    export BENCH_BOOTSTRAP="$root/target/lambda/secret-replicator/bootstrap"
else
    tail -n 20 target/bench-build.log >&2
    echo "bench.sh: the arm64 build failed; the table reports the bootstrap as not built" >&2
fi

echo "bench.sh: Python's re on the transform workloads" >&2
BENCH_PYTHON=$("$root/.venv/bin/python" benches/python_transform.py)
export BENCH_PYTHON

echo "bench.sh: cargo bench --bench replicator" >&2
cargo bench --bench replicator | tee target/bench.md
