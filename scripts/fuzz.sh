#!/usr/bin/env bash
# scripts/fuzz.sh [SECONDS]: builds the libFuzzer targets (tests/fuzz/) with
# clang in build-fuzz/ and runs each for SECONDS (default 30), as many at a
# time as there are cores, on a scratch copy of its committed corpus, which
# the run never changes.  Fails if any target crashes, leaks, hangs or breaks an invariant;
# the input that did it is kept in build-fuzz/crashes/ for replay:
#   build-fuzz/fuzz/fuzz_lease build-fuzz/crashes/fuzz_lease/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-30}
dir=build-fuzz
jobs=$(nproc 2>/dev/null || echo 2)
targets=(fuzz_url fuzz_reply fuzz_lease)
command -v clang >/dev/null || { echo "fuzz: clang is missing (make deps)" >&2; exit 1; }
if [ ! -f "$dir/CMakeCache.txt" ]; then
    CC=clang cmake -S . -B "$dir" -DLEASEHOLD_FUZZ=ON -DLEASEHOLD_TESTS=OFF \
        >"$dir.configure.log" 2>&1 || { cat "$dir.configure.log"; exit 1; }
    rm -f "$dir.configure.log"
fi
cmake --build "$dir" -j"$jobs" --target "${targets[@]}" -- --no-print-directory

# A reply header can announce millions of elements (conn_reply.c allocates them
# at once): allocations above 256 MB fail, as they may in production, and
# the code must cope with NULL instead of the run stopping on out-of-memory.
export ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=64:allocator_may_return_null=1:max_allocation_size_mb=256
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Runs target $1 for $seconds on a scratch corpus; its exit status goes to
# $work/rc.  The targets run $jobs at a time, each with a core of its own.
run_target() {
    local t=$1 work="$dir/runs/$1" crashes="$dir/crashes/$1" rc=0
    "$dir/fuzz/$t" -max_total_time="$seconds" -timeout=10 -print_final_stats=1 \
        -artifact_prefix="$crashes/" "$work/corpus" >"$work/log" 2>&1 || rc=$?
    echo "$rc" >"$work/rc"
}
pids=()
for t in "${targets[@]}"; do
    work="$dir/runs/$t"
    rm -rf "$work"
    mkdir -p "$work/corpus" "$dir/crashes/$t"
    cp tests/fuzz/corpus/"$t"/* "$work/corpus/"
    if [ ${#pids[@]} -ge "$jobs" ]; then
        wait "${pids[0]}"
        pids=("${pids[@]:1}")
    fi
    run_target "$t" &
    pids+=($!)
done
wait
failed=()
for t in "${targets[@]}"; do
    work="$dir/runs/$t"
    crashes="$dir/crashes/$t"
    rc=$(cat "$work/rc" 2>/dev/null || echo 1)
    # "#N DONE cov: C ft: F corp: K/S ..." and the final stats.
    done_line=$(grep -E "^#[0-9]+[[:space:]]+DONE" "$work/log" | tail -n 1 || true)
    cov=$(sed -nE 's/.* cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+).*/\1 edges, \2 features, \3 inputs/p' \
        <<<"$done_line")
    runs=$(sed -nE 's/^stat::number_of_executed_units: *//p' "$work/log")
    rate=$(sed -nE 's/^stat::average_exec_per_sec: *//p' "$work/log")
    if [ "$rc" -ne 0 ]; then
        echo "fuzz: $t FAILED (exit $rc):"
        grep -E "invariant broken|ERROR: |SUMMARY: |^    #[0-9]+ " "$work/log" | head -n 30
        ls "$crashes"/* 2>/dev/null | sed 's/^/fuzz:   reproduce with: '"$dir\/fuzz\/$t"' /'
        failed+=("$t")
    else
        echo "fuzz: $t ok: ${runs:-?} runs in $seconds s (${rate:-?}/s), coverage ${cov:-?}"
    fi
done
if [ ${#failed[@]} -ne 0 ]; then
    echo "fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
