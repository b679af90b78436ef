#!/usr/bin/env bash
# bench/latency.sh: per-stage latency of the demo chain (issue 2).
#
# Runs the demo (RTSP server + test-pattern publisher + receiver in one process) for DURATION
# seconds at 640x480 (2000 kbit/s) and 1280x720 (4000 kbit/s), 30 fps, and prints one markdown
# table per run from the demo's end-of-run summary: stage, n, p50, p95, p99, max (ms).
# Then, unless PROBE_BITRATE=0, measures the real H.264 bitrate of each setting in a separate
# short run (livefeed serve + livefeed publish, read back with `ffmpeg -c copy`), so the extra
# reader does not disturb the latency figures.
#
# Builds nothing: expects target/release/livefeed (cargo build --release).
# Environment: DURATION (30), FRAMERATE (30), RUNS ("640x480:2000 1280x720:4000"),
#              AUDIOS ("none": each run once per value of the demo's --audio, e.g. "none tone"
#              to compare the chain with and without the test tone beside the video),
#              PROBE_BITRATE (1), PROBE_SECS (10), OUT_DIR (a new /tmp/livefeed-bench.* dir).
# Takes about 2 × (DURATION + 2) s, plus 2 × (PROBE_SECS + 5) s for the bitrate probe.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-30}
FRAMERATE=${FRAMERATE:-30}
RUNS=${RUNS:-"640x480:2000 1280x720:4000"}
AUDIOS=${AUDIOS:-none}
PROBE_BITRATE=${PROBE_BITRATE:-1}
PROBE_SECS=${PROBE_SECS:-10}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

require_bin
require_tool python3 "formatting the tables"
if [ "$PROBE_BITRATE" = 1 ]; then
    require_tool ffmpeg "the bitrate probe (or set PROBE_BITRATE=0)"
    require_tool ffprobe "the bitrate probe (or set PROBE_BITRATE=0)"
fi

echo "# livefeed latency benchmark (bench/latency.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc) (the binary is as old as its build time above)"
echo "- machine: $(machine_desc)"
echo "- logs and raw JSON: $OUT_DIR"
echo

for run in $RUNS; do
for audio in $AUDIOS; do
    res=${run%%:*}
    kbps=${run##*:}
    tag="demo-$res-audio-$audio"
    echo "## demo $res @ ${FRAMERATE} fps, ${kbps} kbit/s, ${DURATION} s, audio: $audio"
    echo
    cmd=("$BIN" --duration "$DURATION" --json --resolution "$res" --framerate "$FRAMERATE"
         --bitrate "$kbps" --audio "$audio"
         --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0)
    echo "Command: \`target/release/livefeed ${cmd[*]:1}\`"
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    status=0
    timeout $((DURATION + 60)) "${cmd[@]}" >"$OUT_DIR/$tag.jsonl" 2>"$OUT_DIR/$tag.log" || status=$?
    if [ "$status" -ne 0 ]; then
        echo "**demo exited with status $status** (log: $OUT_DIR/$tag.log)"
        echo
    fi
    targets=()
    if [ "$res" = 640x480 ] && [ "$FRAMERATE" = 30 ]; then
        targets=(--target-decoded-p50 10 --target-server-p99 1)
    else
        targets=(--target-server-p99 1)
    fi
    python3 "$BENCH_DIR/summary_table.py" "$OUT_DIR/$tag.jsonl" "${targets[@]}" || true
    echo
done
done

if [ "$PROBE_BITRATE" = 1 ]; then
    echo "## actual bitrate (separate run per setting)"
    echo
    echo "livefeed serve + \`livefeed publish\` at the same settings, read back for ${PROBE_SECS} s with"
    echo "\`ffmpeg -rtsp_transport tcp -i URL -t ${PROBE_SECS} -c copy -f h264\`; bitrate = bytes × 8 / (frames / fps)"
    echo "of the H.264 elementary stream (Annex B, including SPS/PPS and the SEI stamps)."
    echo
    echo "| setting | requested kbit/s | measured kbit/s | frames read |"
    echo "|---|---:|---:|---:|"
    for run in $RUNS; do
        res=${run%%:*}
        kbps=${run##*:}
        tag="probe-$res"
        start_server "$OUT_DIR/$tag-server"
        "$BIN" publish --url "rtsp://127.0.0.1:$SERVER_PORT/probe" --resolution "$res" \
            --framerate "$FRAMERATE" --bitrate "$kbps" --duration $((PROBE_SECS + 4)) --json \
            >"$OUT_DIR/$tag-publish.jsonl" 2>"$OUT_DIR/$tag-publish.log" &
        pub=$!
        BG_PIDS+=("$pub")
        sleep 1.5
        rate=$(tap_bitrate "rtsp://127.0.0.1:$SERVER_PORT/probe" "$PROBE_SECS" "$FRAMERATE" "$OUT_DIR/$tag.h264")
        frames=$(timeout 60 ffprobe -v error -count_packets -select_streams v:0 \
            -show_entries stream=nb_read_packets -of csv=p=0 "$OUT_DIR/$tag.h264" 2>/dev/null | head -1 || true)
        # The publisher stops by itself after PROBE_SECS + 4 s; bounded wait, then stop it.
        for _ in $(seq 100); do kill -0 "$pub" 2>/dev/null || break; sleep 0.1; done
        kill_tree "$pub"
        wait "$pub" 2>/dev/null || true
        stop_server
        echo "| $res @ $FRAMERATE | $kbps | $rate | ${frames:-n/a} |"
    done
    echo
fi
