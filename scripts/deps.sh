#!/usr/bin/env bash
# Installs, with apt-get, whatever leasehold needs to build, test and demo and
# this machine lacks; says what it installs.  Installs nothing when all is here.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
for pkg in build-essential cmake pkg-config libhiredis-dev libssl-dev openssl libcmocka-dev redis-server \
    redis-tools curl clang libclang-rt-14-dev valgrind; do
    have_pkg "$pkg" || need+=("$pkg")
done
if [ ${#need[@]} -eq 0 ]; then
    echo "deps: everything needed is installed"
    exit 0
fi
echo "deps: installing ${need[*]}"
if [ "$(id -u)" -ne 0 ]; then
    echo "deps: need root to install packages (run as root, or install: ${need[*]})" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# The package may start a system redis-server; leasehold never uses it, and
# every test and the demo start their own on a free loopback port.
echo "deps: installed ${need[*]}"
