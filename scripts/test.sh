#!/usr/bin/env bash
# Builds Sluice and runs every test: unit tests (Catch2, one binary per module)
# and system tests (the real binaries on this machine), through CTest.
#
#   scripts/test.sh              warnings-as-errors build in build/, all tests
#   scripts/test.sh --sanitize   the same under ASan+UBSan, in build-asan/
set -euo pipefail
cd "$(dirname "$0")/.."

build=build
flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
skip_tests=()
if [ "${1:-}" = "--sanitize" ]; then
    build=build-asan
    # -g1: line tables for the sanitizers' reports, without the variables' debug
    # information (the build is for running the tests, not for a debugger).
    flags=(-DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG=-g1 -DSLUICE_SANITIZE=ON)
    # Tests that run no Sluice code: the UDP impairment proxy's own test, and
    # the bash completion (it only reads `sluice --help`).
    skip_tests=(-E "udp_impair proxy|bash completion")
    export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
    export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
fi

cmake -S . -B "$build" -G Ninja -DSLUICE_WERROR=ON "${flags[@]}"
cmake --build "$build"
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" "${skip_tests[@]}"
