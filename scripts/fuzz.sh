#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan+UBSan) in build-fuzz/ and runs
# each one for FUZZ_SECONDS (default 30) on a scratch copy of its seed corpus.
# Exits non-zero if any target crashes, leaks, times out or runs out of memory.
#
#   scripts/fuzz.sh                              every target, 30 s each, FUZZ_JOBS (default:
#                                                one per core) at a time
#   FUZZ_SECONDS=600 scripts/fuzz.sh fuzz_archive   one target, longer
#
# New corpus entries are discarded with the scratch directory; the repository's
# corpus only changes by hand. Logs and crash inputs go to build-fuzz/fuzz-out/
# <target>/ (re-run one with: build-fuzz/tests/fuzz/<target> <crash file>).
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(fuzz_manifest fuzz_release fuzz_archive fuzz_frame fuzz_reassembler fuzz_annex fuzz_hops fuzz_media_index)
if [ "$#" -gt 0 ]; then targets=("$@"); fi
seconds="${FUZZ_SECONDS:-30}"
build=build-fuzz
out="$build/fuzz-out"

cmake -S . -B "$build" -G Ninja -DCMAKE_CXX_COMPILER=clang++ -DSLUICE_FUZZ=ON -DSLUICE_TESTS=ON \
    -DCMAKE_BUILD_TYPE=Fuzz -DCMAKE_CXX_FLAGS_FUZZ="-O1 -gline-tables-only"
# Only the fuzz targets (and the library under them): the unit tests and the
# CLI are built and run by scripts/test.sh.
cmake --build "$build" --target "${targets[@]}"

scratch="$(mktemp -d "${TMPDIR:-/tmp}/sluice-fuzz.XXXXXX")"
trap 'rm -rf "$scratch"' EXIT

# UBSan is recoverable in this build: make every report fatal. The targets
# compile in the same defaults, but a caller's own *_OPTIONS would replace
# them, so ours are appended (the last setting wins).
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}halt_on_error=1:print_stacktrace=1"

# cov, ft and corp ("cov: 1352 ft: 3224 corp: 32/2648b") from the last status
# line, the rest from -print_final_stats.
final_stat() { sed -n "s/^stat::$2: *//p" "$1" | tail -n 1; }
status_field() { { grep -E '^#[0-9]+' "$1" || true; } | tail -n 1 | sed -n "s/.* $2: \([0-9]*\).*/\1/p"; }

# run_target TARGET: one fuzzer on a scratch copy of its corpus; its summary
# line goes to $scratch/summary/TARGET, its exit status is the fuzzer's.
run_target() {
    local target=$1
    local corpus="$scratch/corpus/$target"
    mkdir -p "$corpus" "$out/$target" "$scratch/work/$target"
    cp -R "tests/fuzz/corpus/$target/." "$corpus/"
    rm -f "$out/$target"/crash-* "$out/$target"/leak-* "$out/$target"/timeout-* "$out/$target"/oom-*
    local log="$out/$target/fuzz.log"
    local seeds
    seeds=$(find "$corpus" -type f | wc -l)

    echo "== $target: ${seconds}s on $seeds seeds (log: $log)"
    local rc=0
    SLUICE_FUZZ_SCRATCH="$scratch/work/$target" "$build/tests/fuzz/$target" "$corpus" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$out/$target/" >"$log" 2>&1 || rc=$?

    local execs speed added rss cov ft corp line
    execs=$(final_stat "$log" number_of_executed_units)
    speed=$(final_stat "$log" average_exec_per_sec)
    added=$(final_stat "$log" new_units_added)
    rss=$(final_stat "$log" peak_rss_mb)
    cov=$(status_field "$log" cov)
    ft=$(status_field "$log" ft)
    corp=$(status_field "$log" corp)
    line=$(printf '%-14s %-4s execs=%s exec/s=%s cov=%s ft=%s seeds=%s new=%s corpus=%s rss=%sMB' "$target" \
        "$([ "$rc" -eq 0 ] && echo ok || echo FAIL)" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" \
        "$seeds" "${added:-?}" "${corp:-?}" "${rss:-?}")
    if [ "$rc" -ne 0 ]; then
        local what artifact
        what=$(grep -m 1 -oE 'ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer): [a-z-]+( [a-z-]+)*|runtime error: .*|property violated: .*' "$log" || true)
        artifact=$(ls "$out/$target"/crash-* "$out/$target"/leak-* "$out/$target"/timeout-* "$out/$target"/oom-* 2>/dev/null | head -n 1 || true)
        line+=" exit=$rc ${what:-see the log}${artifact:+ input=$artifact}"
        tail -n 60 "$log" >&2
    fi
    echo "$line" > "$scratch/summary/$target"
    return "$rc"
}

# Each fuzzer uses one core: FUZZ_JOBS of them at a time (default: one per core).
jobs="${FUZZ_JOBS:-$(nproc)}"
mkdir -p "$scratch/summary"
failed=0
running=()
for target in "${targets[@]}"; do
    run_target "$target" &
    running+=($!)
    if [ "${#running[@]}" -ge "$jobs" ]; then
        wait "${running[0]}" || failed=1
        running=("${running[@]:1}")
    fi
done
for pid in "${running[@]}"; do wait "$pid" || failed=1; done
summaries=()
for target in "${targets[@]}"; do summaries+=("$(cat "$scratch/summary/$target" 2>/dev/null || echo "$target ?")"); done

echo
echo "== fuzz summary (${seconds}s per target)"
printf '%s\n' "${summaries[@]}"
exit "$failed"
