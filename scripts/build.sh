#!/usr/bin/env bash
# scripts/build.sh DIR SANITIZER: configures (once) and builds leasehold in DIR.
set -euo pipefail
dir=${1:-build}
san=${2:-}
jobs=$(nproc 2>/dev/null || echo 2)
if [ ! -f "$dir/CMakeCache.txt" ]; then
    cmake -S . -B "$dir" -DLEASEHOLD_SANITIZE="$san" >"$dir.configure.log" 2>&1 ||
        { cat "$dir.configure.log"; exit 1; }
    rm -f "$dir.configure.log"
fi
cmake --build "$dir" -j"$jobs" -- --no-print-directory
