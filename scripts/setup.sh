#!/usr/bin/env bash
# Installs every Debian package that building, testing and the demo need, then
# configures and builds Sluice. Idempotent: run it again at any time.
#
#   scripts/setup.sh            install packages, build into build/
#   SLUICE_SKIP_BUILD=1 ...     install packages only
set -euo pipefail

packages=(
    # toolchain
    build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev lld
    # libraries
    libssl-dev libarchive-dev nlohmann-json3-dev libcli11-dev catch2 libisal-dev libxxhash-dev
    libboost-dev libtomlplusplus-dev libsystemd-dev libmagic-dev libsqlite3-dev
    # tools the tests, demo and benchmarks call
    openssl coreutils time xxd python3 iperf3 udpcast nftables iproute2
    clamav-daemon passwd util-linux sqlite3
    # the Debian package (scripts/package.sh): lintian; systemd-analyze, -sysusers, -tmpfiles
    lintian systemd
)

as_root() {
    if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    as_root apt-get update
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
    echo "setup: all ${#packages[@]} packages already installed"
fi

if [ "${SLUICE_SKIP_BUILD:-0}" != 1 ]; then
    cd "$(dirname "$0")/.."
    cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSLUICE_WERROR=ON
    cmake --build build
fi
