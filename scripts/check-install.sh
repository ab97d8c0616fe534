#!/usr/bin/env bash
# scripts/check-install.sh BUILD_DIR: installs into a temporary prefix and
# checks what a user gets: a program builds against it with pkg-config (shared
# and static), and the shared library exports leasehold_* and nothing else.
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d "${TMPDIR:-/tmp}/leasehold-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for f in include/leasehold.h lib/libleasehold.a lib/libleasehold.so bin/leasehold bin/server \
    share/man/man1/leasehold.1 lib/pkgconfig/leasehold.pc; do
    [ -e "$prefix/$f" ] || { echo "install: $f is missing" >&2; exit 1; }
done
cc -Wall -Werror examples/minimal.c $(pkg-config --cflags --libs leasehold) \
    -Wl,-rpath,"$prefix/lib" -o "$prefix/minimal-shared"
cc -Wall -Werror -static-libgcc examples/minimal.c $(pkg-config --cflags leasehold) \
    "$prefix/lib/libleasehold.a" $(pkg-config --libs-only-l --static leasehold | sed 's/-lleasehold//') \
    -lhiredis -o "$prefix/minimal-static"
others=$(nm -D --defined-only "$prefix/lib/libleasehold.so" | awk '{print $3}' | grep -v '^leasehold_' || true)
if [ -n "$others" ]; then
    echo "install: libleasehold.so exports more than leasehold_*: $others" >&2
    exit 1
fi
echo "install: header, libraries, pkg-config, tools and man page work from $prefix"
