#!/usr/bin/env bash
# bench/av_server_latency.sh: what an audio track costs the video's latency through the server.
#
# For each mode (video only; video + AAC), one `livefeed serve`, one ffmpeg publisher
# (testsrc2 640x480 at 30 fps, libx264 ultrafast/zerolatency, 2000 kbit/s; + a 48 kHz AAC sine
# in the second mode) over RTSP/TCP, and READERS ffmpeg readers over RTSP/TCP reading every
# track (`-f null`), for SECS seconds. The server measures its own added latency per video
# access unit sent to a reader (ingest → egress, stage server_ingest_to_egress) and stores
# every sample; the run's samples are read back from /api/v1/metrics in one bucket: count,
# p50, p95, max (ms). Prints a markdown table and the ratio of the two modes.
#
# Builds nothing: expects target/release/livefeed (cargo build --release).
# Environment: SECS (30), READERS (3), OUT_DIR (a new /tmp/livefeed-bench.* dir).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECS=${SECS:-30}
READERS=${READERS:-3}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
require_bin
require_tool ffmpeg "publisher and readers"
require_tool python3 "reading the figures"
require_tool curl "reading the figures"

echo "# Server-added latency with and without an audio track (bench/av_server_latency.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- checkout at run time: $(checkout_desc)"
echo "- machine: $(machine_desc)"
echo "- $READERS ffmpeg RTSP/TCP readers, $SECS s per mode; logs: $OUT_DIR"
echo
echo "| mode | samples | p50 ms | p95 ms | max ms | load before |"
echo "|---|---:|---:|---:|---:|---|"

declare -A P50
for mode in video av; do
    load=$(cut -d' ' -f1-3 /proc/loadavg)
    start_server "$OUT_DIR/$mode"
    server_http_port "$OUT_DIR/$mode"
    url="rtsp://127.0.0.1:$SERVER_PORT/bench"
    audio=()
    if [ "$mode" = av ]; then
        audio=(-f lavfi -i "sine=frequency=1000:sample_rate=48000" -c:a aac)
    fi
    ffmpeg -hide_banner -loglevel error -re -f lavfi -i testsrc2=size=640x480:rate=30 \
        "${audio[@]:0:4}" -t $((SECS + 10)) -c:v libx264 -preset ultrafast -tune zerolatency \
        -b:v 2000k -g 30 -pix_fmt yuv420p "${audio[@]:4}" \
        -f rtsp -rtsp_transport tcp "$url" >"$OUT_DIR/$mode-pub.log" 2>&1 &
    BG_PIDS+=("$!")
    sleep 2
    since=$(($(date +%s) * 1000))
    for i in $(seq "$READERS"); do
        ffmpeg -hide_banner -loglevel error -rtsp_transport tcp -i "$url" -t "$SECS" -f null - \
            >"$OUT_DIR/$mode-reader$i.log" 2>&1 &
        BG_PIDS+=("$!")
    done
    sleep $((SECS + 2))
    until=$(($(date +%s) * 1000))
    step=$(( (until - since) / 1000 * 1000 + 1000 ))
    sleep 2 # the server stores its samples once a second
    curl -fsS "http://127.0.0.1:$SERVER_HTTP_PORT/api/v1/metrics?path=bench&stage=server_ingest_to_egress&client=server&since=$since&until=$until&step=$step" \
        >"$OUT_DIR/$mode-metrics.json"
    row=$(python3 - "$OUT_DIR/$mode-metrics.json" <<'PY'
import json, sys
points = json.load(open(sys.argv[1]))["points"]
count = sum(p["count"] for p in points)
if not points:
    print("0 | n/a | n/a | n/a")
else:
    # One bucket covers the run (a second one only if the run straddles a bucket edge).
    p = max(points, key=lambda p: p["count"])
    print(f'{count} | {p["p50"]:.3f} | {p["p95"]:.3f} | {max(q["max"] for q in points):.3f}')
PY
)
    P50[$mode]=$(echo "$row" | cut -d'|' -f2 | tr -d ' ')
    label=$([ "$mode" = av ] && echo "H.264 + AAC" || echo "H.264 only")
    echo "| $label | $row | $load |"
    bench_cleanup
    SERVER_PID=
done
echo
python3 - "${P50[video]}" "${P50[av]}" <<'PY'
import sys
try:
    v, a = float(sys.argv[1]), float(sys.argv[2])
    print(f"p50 with audio / without: {a / v:.2f}")
except (ValueError, ZeroDivisionError):
    print("p50 ratio: n/a")
PY
