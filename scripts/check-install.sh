#!/usr/bin/env bash
# scripts/check-install.sh BUILD_DIR: installs into a temporary prefix and
# checks what a user gets: a program builds against it as the README says,
# with pkg-config (leasehold: the shared library; leasehold-static: libleasehold.a
# linked in, so the program runs without libleasehold.so) and with CMake
# (find_package(leasehold), both imported targets); the shared library
# exports leasehold_* and nothing else; the tools (leasehold,
# leasehold-server), their man pages and the bash completion are in place.
set -euo pipefail
build=${1:-build}
prefix=$(mktemp -d "${TMPDIR:-/tmp}/leasehold-install.XXXXXX")
trap 'rm -rf "$prefix"' EXIT
cmake --install "$build" --prefix "$prefix" >/dev/null
export PKG_CONFIG_PATH=$prefix/lib/pkgconfig
for f in include/leasehold.h lib/libleasehold.a lib/libleasehold.so bin/leasehold \
    bin/leasehold-server share/man/man1/leasehold.1 share/man/man1/leasehold-server.1 \
    share/bash-completion/completions/leasehold lib/pkgconfig/leasehold.pc \
    lib/pkgconfig/leasehold-static.pc lib/cmake/leasehold/leaseholdConfig.cmake \
    lib/cmake/leasehold/leaseholdConfigVersion.cmake; do
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
# needs_lib BINARY yes|no: whether BINARY needs libleasehold.so at run time.
needs_lib() {
    local found=no
    readelf -d "$1" | grep -q 'NEEDED.*libleasehold\.so' && found=yes
    [ "$found" = "$2" ] || { echo "install: $1: needs libleasehold.so: $found, expected $2" >&2; exit 1; }
}
# runs BINARY: it starts, says why it cannot connect (nothing listens on port 1)
# and exits 1.
runs() {
    local out status=0
    out=$(env -u LD_LIBRARY_PATH "$1" redis://127.0.0.1:1 2>&1 </dev/null) || status=$?
    case $status:$out in
    1:*"connection refused"*) ;;
    *) echo "install: $1 did not run as expected (exit $status): $out" >&2; exit 1 ;;
    esac
}
# The README's commands, as written (the rpath stands in for ldconfig).
cc -Wall -Werror examples/minimal.c $(pkg-config --cflags --libs leasehold) \
    -Wl,-rpath,"$prefix/lib" -o "$prefix/minimal-shared"
needs_lib "$prefix/minimal-shared" yes
runs "$prefix/minimal-shared"
cc -Wall -Werror examples/minimal.c $(pkg-config --cflags --libs leasehold-static) \
    -o "$prefix/minimal-static"
needs_lib "$prefix/minimal-static" no
runs "$prefix/minimal-static"
# find_package(leasehold) from a project of its own.
mkdir "$prefix/consumer"
cp examples/minimal.c "$prefix/consumer/"
cat >"$prefix/consumer/CMakeLists.txt" <<'CMAKE'
cmake_minimum_required(VERSION 3.18)
project(uses_leasehold C)
find_package(leasehold 0.1 REQUIRED)
add_executable(app_shared minimal.c)
target_link_libraries(app_shared PRIVATE leasehold::leasehold)
add_executable(app_static minimal.c)
target_link_libraries(app_static PRIVATE leasehold::leasehold_static)
CMAKE
cmake -S "$prefix/consumer" -B "$prefix/consumer/build" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$prefix/consumer/build" >/dev/null
needs_lib "$prefix/consumer/build/app_shared" yes
runs "$prefix/consumer/build/app_shared"
needs_lib "$prefix/consumer/build/app_static" no
runs "$prefix/consumer/build/app_static"
others=$(nm -D --defined-only "$prefix/lib/libleasehold.so" | awk '{print $3}' | grep -v '^leasehold_' || true)
if [ -n "$others" ]; then
    echo "install: libleasehold.so exports more than leasehold_*: $others" >&2
    exit 1
fi
echo "install: header, libraries (pkg-config shared and static, CMake package), tools, man pages and completion work from $prefix"
