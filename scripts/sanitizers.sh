#!/usr/bin/env bash
# Opt-in: run the Rust core's tests under Miri and ThreadSanitizer (not part of scripts/test.sh).
#
#   bash scripts/sanitizers.sh            # both
#   bash scripts/sanitizers.sh miri       # Miri only: UB in the serial kernels (small inputs)
#   bash scripts/sanitizers.sh tsan       # ThreadSanitizer only: data races in the thread pool
#
# Needs the nightly toolchain with the miri and rust-src components:
#   rustup toolchain install nightly && rustup +nightly component add miri rust-src
# Builds go to $CARGO_TARGET_DIR (default /tmp/fastalign-sanitizers) so the main target/ is
# untouched. Run it niced on a shared machine: `nice -n 15 bash scripts/sanitizers.sh`.
#
# Miri interprets every instruction (~1000x slower than native), so:
#   * proptest runs PROPTEST_CASES (default 4) cases per property;
#   * the tests listed in MIRI_SKIP take from half an hour to hours under Miri (inputs above the
#     kernels' parallel threshold of 2^19 elements, or hundreds of random packings); they are
#     skipped there and run under TSan instead (natively, with the pool's threads);
#   * -Zmiri-no-extra-rounding-error: Miri otherwise adds random error to f32::exp & co. (to
#     find code that relies on their precision), which fails fast_exp_is_within_an_ulp, a test
#     of our exp against std's to 1 ulp; it is not undefined behaviour;
#   * -Zmiri-disable-isolation: proptest reads the working directory (failure persistence).
# TSan rebuilds std with the sanitizer (-Zbuild-std) and runs the whole suite natively with 4
# pool threads (FASTALIGN_NUM_THREADS), so the parallel kernels really run in parallel.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/tmp/fastalign-sanitizers}"
what="${1:-all}"
host="$(rustc +nightly -vV | sed -n 's/^host: //p')"

MIRI_SKIP=(
    parallel_blocks_equal                       # advantages, overlong, ratios: 2^20 elements, for the pool
    time_index_step                             # an #[ignore]d timing loop (1M lengths)
    dense_and_sparse_spaces_agree               # packing: > 30 min each under Miri
    matches_trl_segment_tree_on_random_inputs
    split_and_wrapped_keep_every_token_once     # packing: > 20 min under Miri
    exact_quotient_equals_division              # rewards: 25M quotients (seconds natively)
    gradient_matches_finite_differences         # losses: ~25 min under Miri (it passed)
)

run_miri() {
    echo "== Miri: cargo +nightly miri test -p fastalign-core =="
    local skips=()
    for t in "${MIRI_SKIP[@]}"; do skips+=(--skip "$t"); done
    PROPTEST_CASES="${PROPTEST_CASES:-4}" MIRIFLAGS="${MIRIFLAGS:--Zmiri-num-cpus=2 -Zmiri-no-extra-rounding-error -Zmiri-disable-isolation}" \
        cargo +nightly miri test -p fastalign-core -- "${skips[@]}"
}

run_tsan() {
    echo "== ThreadSanitizer: cargo +nightly test -Zbuild-std (target $host) =="
    RUSTFLAGS="-Zsanitizer=thread" RUSTDOCFLAGS="-Zsanitizer=thread" TSAN_OPTIONS="halt_on_error=1" \
        FASTALIGN_NUM_THREADS=4 PROPTEST_CASES="${PROPTEST_CASES:-64}" \
        cargo +nightly test -Zbuild-std --target "$host" -p fastalign-core --lib --tests
}

case "$what" in
    miri) run_miri ;;
    tsan) run_tsan ;;
    all) run_miri; run_tsan ;;
    *) echo "usage: $0 [miri|tsan|all]" >&2; exit 2 ;;
esac
