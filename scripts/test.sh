#!/usr/bin/env bash
# Builds leasehold three ways and runs every test in each: a plain build, an
# ASan+UBSan build and a TSan build, then runs each fuzz target for
# FUZZ_SECONDS (30).  Fails on the first failing build.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v redis-server >/dev/null || { echo "test: redis-server is missing (make deps)" >&2; exit 1; }
# Two tests per core: they mostly wait (for leases, timers and Redis), and
# every bound they assert is scaled for sanitizer builds with a wide margin.
# (On 2 cores: plain 140 s, ASan 96 s, TSan 140 s at -j4; 270, 177, 257 at -j2.)
jobs=$(($(nproc 2>/dev/null || echo 2) * 2))
start=$(date +%s)

run() { # run NAME DIR SANITIZER MULTIPLIER
    local name=$1 dir=$2 san=$3 mult=$4
    echo "== $name: building in $dir"
    scripts/build.sh "$dir" "$san"
    echo "== $name: running the tests"
    (cd "$dir" && LEASEHOLD_TEST_TIMEOUT_MULTIPLIER=$mult \
        ctest --output-on-failure --timeout 900 -j"$jobs")
}

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1

run plain build "" 1
echo "== install: checking make install from the plain build"
scripts/check-install.sh build
run "ASan+UBSan" build-asan address 3
run TSan build-tsan thread 3
echo "== fuzzing: each libFuzzer target for ${FUZZ_SECONDS:-30} s (build-fuzz)"
scripts/fuzz.sh "${FUZZ_SECONDS:-30}"
echo "== all tests passed in $(( $(date +%s) - start )) s"
