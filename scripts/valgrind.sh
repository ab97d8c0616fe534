#!/usr/bin/env bash
# scripts/valgrind.sh [DIR]: runs the integration tests of the build in DIR
# (default build) under valgrind memcheck, with the candidate processes they
# re-execute themselves as (redis-server and the openssl command that makes
# the TLS tests' certificates are skipped).  Each process writes its
# own log in DIR/valgrind/; fails if any test fails or any process reports an
# error or a definite or indirect leak.  Slow: deadlines are scaled by 10.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-build}
command -v valgrind >/dev/null || { echo "valgrind: valgrind is missing (make deps)" >&2; exit 1; }
command -v redis-server >/dev/null || { echo "valgrind: redis-server is missing (make deps)" >&2; exit 1; }
tests=(test_election test_faults test_takeover test_compat test_badinput test_service test_tls)
logs="$dir/valgrind"
rm -rf "$logs"
mkdir -p "$logs"
start=$(date +%s)
failed=()
for t in "${tests[@]}"; do
    [ -x "$dir/tests/$t" ] || { echo "valgrind: $dir/tests/$t is not built" >&2; exit 1; }
    t0=$(date +%s)
    rc=0
    LEASEHOLD_TEST_TIMEOUT_MULTIPLIER=10 LEASEHOLD_BUILD_DIR="$PWD/$dir" LEASEHOLD_SOURCE_DIR="$PWD" \
        valgrind --tool=memcheck --leak-check=full --show-leak-kinds=definite,indirect \
        --errors-for-leak-kinds=definite,indirect --error-exitcode=1 --track-fds=no \
        --trace-children=yes --trace-children-skip='*redis-server*,*openssl*' \
        --log-file="$logs/$t.%p.log" "$dir/tests/$t" >"$logs/$t.out" 2>&1 || rc=$?
    # Every process's verdict, children's included, whose exit status the
    # test may not look at.  A candidate killed with SIGKILL writes no
    # summary: only the errors it met before are there to find.
    bad=""
    for log in "$logs/$t".*.log; do
        if grep -q "ERROR SUMMARY: [1-9]" "$log" ||
            grep -qE "^==[0-9]+== (Invalid|Conditional|Use of|Syscall param|Mismatched|Source and)" \
                "$log"; then
            bad="$bad $log"
        fi
    done
    procs=$(ls "$logs/$t".*.log | wc -l)
    if [ "$rc" -ne 0 ] || [ -n "$bad" ]; then
        echo "valgrind: $t FAILED (exit $rc) in $(( $(date +%s) - t0 )) s, $procs processes"
        [ "$rc" -ne 0 ] && tail -n 20 "$logs/$t.out"
        for log in $bad; do
            echo "--- $log"
            grep -E "^==[0-9]+== ([A-Z]|  (at|by) )" "$log" | head -n 60 || cat "$log"
        done
        failed+=("$t")
    else
        echo "valgrind: $t clean in $(( $(date +%s) - t0 )) s, $procs processes"
    fi
done
echo "valgrind: ${#tests[@]} tests in $(( $(date +%s) - start )) s; logs in $logs"
if [ ${#failed[@]} -ne 0 ]; then
    echo "valgrind: errors or leaks in: ${failed[*]}" >&2
    exit 1
fi
