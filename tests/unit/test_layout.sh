#!/usr/bin/env bash
# tests/unit/test_layout.sh SOURCE_DIR: README's "Source layout" block
# matches the tree.  Every line of the block is "PATH  what it is"; a PATH
# ending in / is a directory.  Each PATH must exist, and every file of the
# directories listed file by file (DIRS below) must have its line.
set -u
src=$1
dirs=(include src tools examples bench scripts tests/support)
block=$(awk '/^## Source layout/ {in_section = 1; next}
             in_section && /^## / {exit}
             in_section && /^```/ {fence = !fence; next}
             in_section && fence {print $1}' "$src/README.md")
[ -n "$block" ] || { echo "FAIL: README.md has no Source layout block"; exit 1; }
failures=0
while read -r path; do
    if [[ $path == */ ]]; then
        [ -d "$src/$path" ] || { echo "FAIL: $path is listed but is no directory"; failures=$((failures + 1)); }
    else
        [ -f "$src/$path" ] || { echo "FAIL: $path is listed but does not exist"; failures=$((failures + 1)); }
    fi
done <<<"$block"
for d in "${dirs[@]}"; do
    while read -r f; do
        grep -qxF "$f" <<<"$block" || { echo "FAIL: $f has no line in README's Source layout"; failures=$((failures + 1)); }
    done < <(cd "$src" && find "$d" -maxdepth 1 -type f | sort)
done
[ "$failures" -eq 0 ] && echo "README's Source layout matches the tree ($(wc -l <<<"$block") lines)"
exit $((failures > 0))
