#!/usr/bin/env bash
# scripts/check-install.sh BUILD_DIR: installs into a temporary prefix and
# checks what a user gets: a program builds against it with pkg-config (shared
# and static), the shared library exports leasehold_* and nothing else, and
# the tools (leasehold, leasehold-server), their man pages and the bash
# completion are in place.
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d "${TMPDIR:-/tmp}/leasehold-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for f in include/leasehold.h lib/libleasehold.a lib/libleasehold.so bin/leasehold \
    bin/leasehold-server share/man/man1/leasehold.1 share/man/man1/leasehold-server.1 \
    share/bash-completion/completions/leasehold lib/pkgconfig/leasehold.pc; do
    [ -e "$prefix/$f" ] || { echo "install: $f is missing" >&2; exit 1; }
done
[ ! -e "$prefix/bin/server" ] || { echo "install: bin/server is installed (leasehold-server)" >&2; exit 1; }
"$prefix/bin/leasehold-server" --version | grep -qx 'leasehold-server [0-9.]*' ||
    { echo "install: leasehold-server --version is not 'leasehold-server X.Y.Z'" >&2; exit 1; }
"$prefix/bin/leasehold" --version | grep -qx 'leasehold [0-9.]*' ||
    { echo "install: leasehold --version is not 'leasehold X.Y.Z'" >&2; exit 1; }
msg=$("$prefix/bin/leasehold-server" --lease 2000 2>&1 || true)
[ "${msg#leasehold-server: }" != "$msg" ] ||
    { echo "install: leasehold-server's messages do not start with its name: $msg" >&2; exit 1; }
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
echo "install: header, libraries, pkg-config, tools, man pages and completion work from $prefix"
