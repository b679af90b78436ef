#!/usr/bin/env bash
# bench/fuzz.sh: runs every cargo-fuzz target of fuzz/ for SECS seconds, one after the other,
# and prints a markdown table: executions, execs/s, final corpus size, coverage, crashes.
#
# 1. `cargo +nightly fuzz build` builds every target once (release + AddressSanitizer, the
#    cargo-fuzz defaults), so the timed runs do not include compiling.
# 2. For each target, the committed seeds (fuzz/corpus/<target>/ and fuzz/regressions/<target>/)
#    are copied into a fresh corpus directory under OUT_DIR, and
#    `cargo +nightly fuzz run <target> OUT_DIR/corpus/<target> -- -max_total_time=SECS ...`
#    runs one libFuzzer process (no -jobs/-workers) that writes new inputs there and any crash,
#    timeout or OOM input to OUT_DIR/artifacts/<target>/. The repository is left untouched.
# 3. Executions come from libFuzzer's final `stat::number_of_executed_units` (or its `#N DONE`
#    line), seconds from its `Done N runs in S second(s)` line (wall time if missing), corpus size
#    is the number of files in the run's corpus directory afterwards (seeds included), `cov`/`ft`
#    are the edge coverage and feature counts of the last status line. A target that crashes
#    stops at its first crash; its artifact names are listed, with their full paths below the
#    table. Copy a crash input into fuzz/regressions/<target>/ so that `cargo test` replays it.
#
# Environment: SECS (120), TARGETS (all of `cargo fuzz list`), TIMEOUT (10: seconds one input
#              may take before libFuzzer reports a timeout), OUT_DIR (a new
#              /tmp/livefeed-fuzz.* dir, holding the logs, corpora and artifacts).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz --locked`).
# Every process it starts is stopped by its PID on exit (bench/lib.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=${SECS:-120}
TIMEOUT=${TIMEOUT:-10}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-fuzz.XXXXXX)}
FUZZ_DIR=$ROOT/fuzz
mkdir -p "$OUT_DIR"
require_tool cargo "building and running the fuzz targets"
if ! cargo +nightly fuzz --version >/dev/null 2>&1; then
    echo "error: cargo-fuzz (or the nightly toolchain) is missing:" >&2
    echo "    rustup toolchain install nightly && cargo install cargo-fuzz --locked" >&2
    exit 2
fi

cd "$FUZZ_DIR"
# cargo-fuzz creates fuzz/artifacts/<target>/ even when -artifact_prefix points elsewhere; the
# ones this run creates are removed again at the end if they stayed empty.
NEW_ARTIFACT_DIRS=()
if [ ! -d "$FUZZ_DIR/artifacts" ]; then NEW_ARTIFACT_DIRS+=("$FUZZ_DIR/artifacts"); fi
if [ -z "${TARGETS:-}" ]; then
    TARGETS=$(cargo +nightly fuzz list)
fi

# Runs a command in the background (so that lib.sh can stop it by PID on exit) and waits for it;
# returns its exit status.
run_bg() { # LOG CMD...
    local log=$1 pid p status=0 rest=()
    shift
    "$@" >"$log" 2>&1 &
    pid=$!
    BG_PIDS+=("$pid")
    wait "$pid" || status=$?
    # Forget the finished PID, so the exit trap never signals a process that reused it.
    for p in "${BG_PIDS[@]}"; do [ "$p" = "$pid" ] || rest+=("$p"); done
    BG_PIDS=("${rest[@]}")
    return "$status"
}

echo "building the fuzz targets (log: $OUT_DIR/build.log)" >&2
if ! run_bg "$OUT_DIR/build.log" cargo +nightly fuzz build; then
    echo "error: cargo +nightly fuzz build failed; see $OUT_DIR/build.log" >&2
    tail -20 "$OUT_DIR/build.log" >&2
    exit 1
fi

COMMIT=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null)" ]; then
    COMMIT="$COMMIT (with uncommitted changes)"
fi
echo "# Fuzzing: $SECS s per target"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- git commit: $COMMIT"
echo "- toolchain: $(rustc +nightly --version), $(cargo +nightly fuzz --version)"
echo "- machine: $(nproc) CPUs ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), load average $(cut -d' ' -f1-3 /proc/loadavg) before the runs"
echo "- libFuzzer: one process per target, -max_total_time=$SECS -timeout=$TIMEOUT, AddressSanitizer, seeded with fuzz/corpus + fuzz/regressions"
echo
echo "| target | seconds | executions | execs/s | corpus (files) | cov / ft | crashes |"
echo "|---|---:|---:|---:|---:|---:|---|"

CRASH_PATHS=()
for target in $TARGETS; do
    corpus=$OUT_DIR/corpus/$target
    artifacts=$OUT_DIR/artifacts/$target
    log=$OUT_DIR/$target.log
    mkdir -p "$corpus" "$artifacts"
    if [ ! -d "$FUZZ_DIR/artifacts/$target" ]; then
        NEW_ARTIFACT_DIRS=("$FUZZ_DIR/artifacts/$target" "${NEW_ARTIFACT_DIRS[@]}")
    fi
    for seeds in "$FUZZ_DIR/corpus/$target" "$FUZZ_DIR/regressions/$target"; do
        if [ -d "$seeds" ]; then find "$seeds" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$corpus/" \;; fi
    done
    echo "fuzzing $target for $SECS s (log: $log)" >&2
    start=$(date +%s.%N)
    status=0
    run_bg "$log" cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$SECS" -timeout="$TIMEOUT" -print_final_stats=1 \
        -artifact_prefix="$artifacts/" || status=$?
    wall=$(echo "$start $(date +%s.%N)" | awk '{printf "%.0f", $2 - $1}')

    execs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log" | tail -1)
    if [ -z "$execs" ]; then
        execs=$(sed -n 's/^#\([0-9][0-9]*\)[[:space:]].*/\1/p' "$log" | tail -1)
    fi
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
    secs=${secs:-$wall}
    last=$(grep -E '^#[0-9]+[[:space:]]' "$log" | tail -1 || true)
    cov=$(echo "$last" | sed -n 's/.* cov: \([0-9]*\) ft: \([0-9]*\).*/\1 \/ \2/p')
    files=$(find "$corpus" -maxdepth 1 -type f | wc -l)
    rate=$(awk -v e="${execs:-0}" -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f", e / s; else print "n/a" }')

    crashes=
    for artifact in "$artifacts"/*; do
        [ -f "$artifact" ] || continue
        name=$(basename "$artifact")
        case $name in slow-unit-*) continue ;; esac
        crashes="$crashes${crashes:+, }\`$name\`"
        CRASH_PATHS+=("$artifact")
    done
    if [ -z "$crashes" ]; then
        if [ "$status" -eq 0 ]; then crashes=0; else crashes="exit status $status, no artifact (see $log)"; fi
    fi
    echo "| $target | $secs | ${execs:-n/a} | $rate | $files | ${cov:-n/a} | $crashes |"
done

for dir in "${NEW_ARTIFACT_DIRS[@]}"; do rmdir "$dir" 2>/dev/null || true; done

echo
echo "Load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)."
echo
if [ "${#CRASH_PATHS[@]}" -gt 0 ]; then
    echo "Crash inputs (copy into fuzz/regressions/<target>/; reproduce with"
    echo "\`cargo +nightly fuzz run <target> <file>\`):"
    echo
    for artifact in "${CRASH_PATHS[@]}"; do echo "- \`$artifact\`"; done
    echo
fi
echo "Logs, corpora and artifacts: \`$OUT_DIR\`"
