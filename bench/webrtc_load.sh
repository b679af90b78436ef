#!/usr/bin/env bash
# bench/webrtc_load.sh: server CPU and memory for 1, 10 and 50 WHEP (WebRTC) viewers of one
# stream (issue 4).
#
# For each N in VIEWERS, one after the other and each with a fresh server:
#   1. start the server on free loopback ports and a 640x480@30 stream on path `live`:
#        SOURCE=pattern   `livefeed serve --test-src --bitrate BITRATE` (the built-in test
#                         pattern; its encoder runs inside the server process, so it is inside
#                         the server's figures; the pattern is easy to compress and comes out
#                         well below BITRATE, see the measured kbit/s)
#        SOURCE=testsrc2  `livefeed serve` plus, as separate processes, ffmpeg's testsrc2 as y4m
#                         piped into `livefeed publish --input - --bitrate BITRATE`, which does
#                         reach BITRATE; the server's figures are then the server alone
#   2. wait until a probe viewer (`whep-load --viewers 1 --seconds 2`) receives frames;
#   3. measure the server's idle CPU (stream running, no viewers) for IDLE_SECS;
#   4. record the server's CPU time (utime+stime, /proc/PID/stat, all threads) and RSS (VmRSS),
#      run `whep-load --viewers N --seconds DURATION` (bench/whep-load: N str0m viewers, one
#      thread and one UDP socket each; it counts the frames and bytes each receives and reads
#      the SEI capture stamp of each frame; a viewer the server answers 503 "still connecting"
#      — 4 per address, 32 in all — asks again until admitted, for up to 60 s), record CPU,
#      RSS and peak RSS (VmHWM) again;
#   5. stop the server (and the publisher).
# The CPU window is the whole whep-load run: N offers/answers, ICE+DTLS, DURATION seconds of
# media, N DELETEs. CPU % is of one core (200 % = both cores of this machine). "net" subtracts
# the idle CPU % of step 3. kbit/s is the H.264 payload (Annex B, as str0m hands it over) per
# viewer from its first frame to the end, i.e. the stream's real bitrate, without RTP/SRTP/UDP
# overhead. The load client runs on the same machine; its own CPU (/usr/bin/time) is reported.
#
# Builds bench/whep-load itself (cargo build --release --manifest-path bench/whep-load/Cargo.toml,
# its own target dir, ~1–2 min the first time); the livefeed binary is not built
# (cargo build --release). Needs python3, /usr/bin/time, and ffmpeg for SOURCE=testsrc2.
# Environment: VIEWERS ("1 10 50"), DURATION (30), IDLE_SECS (10), BITRATE (2000),
#              SOURCE (pattern | testsrc2), WHEP_LOAD_BIN (a prebuilt whep-load),
#              OUT_DIR (a new /tmp/livefeed-bench.* dir).
# Takes about len(VIEWERS) × (DURATION + IDLE_SECS + ~8) s: ~2.5 minutes with the defaults.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

VIEWERS=${VIEWERS:-"1 10 50"}
DURATION=${DURATION:-30}
IDLE_SECS=${IDLE_SECS:-10}
BITRATE=${BITRATE:-2000}
SOURCE=${SOURCE:-pattern}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

require_bin
require_tool python3 "formatting the tables"
if [ ! -x /usr/bin/time ]; then
    echo "error: /usr/bin/time not found (Debian: apt-get install -y time)" >&2
    exit 2
fi
case "$SOURCE" in
pattern) ;;
testsrc2) require_tool ffmpeg "SOURCE=testsrc2 (the y4m feeder)" ;;
*)
    echo "error: SOURCE must be pattern or testsrc2" >&2
    exit 2
    ;;
esac
load_bin whep-load "$OUT_DIR" "${WHEP_LOAD_BIN:-}" WHEP_LOAD_BIN
CLK_TCK=$(getconf CLK_TCK)

# kib PID FIELD: a VmRSS/VmHWM-style field of /proc/PID/status, in KiB.
kib() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status"; }
now_s() { date +%s.%N; }

echo "# livefeed WebRTC (WHEP) server load (bench/webrtc_load.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc) (the binary is as old as its build time above)"
echo "- machine: $(machine_desc); server, stream source and load client share them"
echo "- load client: bench/whep-load (str0m 0.24, one thread and one UDP socket per viewer), ${DURATION} s per viewer from its answer"
echo "- logs and raw JSON: $OUT_DIR"
echo

rows=()
details=()
# Each server's metrics store (SQLite, --data-dir, default ./livefeed-data) goes to the output
# directory; set through the environment so that binaries older than the store ignore it.
for n in $VIEWERS; do
    tag="n$n"
    pub=
    if [ "$SOURCE" = pattern ]; then
        serve_args=(--test-src --bitrate "$BITRATE")
        LIVEFEED_DATA_DIR=$OUT_DIR/$tag-data start_server "$OUT_DIR/$tag-server" "${serve_args[@]}"
        source_desc="\`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 ${serve_args[*]}\` with \`LIVEFEED_DATA_DIR=\$OUT_DIR/n$n-data\`"
    else
        LIVEFEED_DATA_DIR=$OUT_DIR/$tag-data start_server "$OUT_DIR/$tag-server"
        secs=$((DURATION + IDLE_SECS + 90))
        (
            timeout "$secs" ffmpeg -hide_banner -loglevel error -re -f lavfi \
                -i testsrc2=size=640x480:rate=30 -t "$secs" -pix_fmt yuv420p -f yuv4mpegpipe - \
                2>"$OUT_DIR/$tag-feeder.err" </dev/null |
                timeout "$secs" "$BIN" publish --url "rtsp://127.0.0.1:$SERVER_PORT/live" \
                    --input - --bitrate "$BITRATE" >"$OUT_DIR/$tag-publish.out" 2>"$OUT_DIR/$tag-publish.err"
        ) &
        pub=$!
        BG_PIDS+=("$pub")
        source_desc="\`target/release/livefeed serve --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0\` with \`LIVEFEED_DATA_DIR=\$OUT_DIR/n$n-data\`, fed by \`ffmpeg -re -f lavfi -i testsrc2=size=640x480:rate=30 -pix_fmt yuv420p -f yuv4mpegpipe - | target/release/livefeed publish --url rtsp://127.0.0.1:P/live --input - --bitrate $BITRATE\`"
    fi
    server_http_port "$OUT_DIR/$tag-server"
    url="http://127.0.0.1:$SERVER_HTTP_PORT/live/whep"

    echo "## $n viewer(s)"
    echo
    echo "Server: $source_desc (pid $SERVER_PID)"

    # Wait for the stream: a probe viewer that receives frames (at most 10 tries of ~2.5 s).
    up=0
    for try in $(seq 10); do
        timeout 30 "$LOADGEN" --url "$url" --viewers 1 --seconds 2 \
            >"$OUT_DIR/$tag-probe.json" 2>"$OUT_DIR/$tag-probe.err" || true
        if python3 -c 'import json,sys; sys.exit(0 if json.load(open(sys.argv[1]))["totals"]["with_frames"] == 1 else 1)' \
            "$OUT_DIR/$tag-probe.json" 2>/dev/null; then
            up=1
            break
        fi
        sleep 0.5
    done
    if [ "$up" != 1 ]; then
        echo
        echo "**no frames reached a probe viewer after 10 tries** (logs: $OUT_DIR/$tag-server.err, $tag-probe.*)"
        echo
        rows+=("| $n | 0/$n | – | – | – | – | – | no frames reached a probe viewer |")
        stop_server
        if [ -n "$pub" ]; then kill_tree "$pub"; wait "$pub" 2>/dev/null || true; fi
        continue
    fi
    sleep 1

    # Idle: the stream running, no viewers.
    i0=$(cpu_ticks "$SERVER_PID")
    w0=$(now_s)
    sleep "$IDLE_SECS"
    i1=$(cpu_ticks "$SERVER_PID")
    w1=$(now_s)

    cmd=("$LOADGEN" --url "$url" --viewers "$n" --seconds "$DURATION")
    echo "Load: \`bench/whep-load/target/release/whep-load --url http://127.0.0.1:P/live/whep --viewers $n --seconds $DURATION\`"
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    c0=$(cpu_ticks "$SERVER_PID")
    r0=$(kib "$SERVER_PID" VmRSS)
    t0=$(now_s)
    status=0
    /usr/bin/time -o "$OUT_DIR/$tag-load.time" -f '%U %S %e' \
        timeout $((DURATION + 120)) "${cmd[@]}" >"$OUT_DIR/$tag-load.json" 2>"$OUT_DIR/$tag-load.err" || status=$?
    t1=$(now_s)
    c1=$(cpu_ticks "$SERVER_PID")
    r1=$(kib "$SERVER_PID" VmRSS)
    hwm=$(kib "$SERVER_PID" VmHWM)
    stop_server
    if [ -n "$pub" ]; then kill_tree "$pub"; wait "$pub" 2>/dev/null || true; fi
    if [ "$status" -ne 0 ]; then
        echo "**whep-load exited with status $status** (not every viewer connected and received frames; log: $OUT_DIR/$tag-load.err)"
        echo
    fi

    out=$(python3 - "$OUT_DIR/$tag-load.json" "$OUT_DIR/$tag-load.time" "$n" "$CLK_TCK" \
        "$i0" "$i1" "$w0" "$w1" "$c0" "$c1" "$t0" "$t1" "$r0" "$r1" "$hwm" <<'EOF'
import json, sys
(path, timefile, n, tck, i0, i1, w0, w1, c0, c1, t0, t1, r0, r1, hwm) = sys.argv[1:]
n, tck = int(n), float(tck)
idle = (float(i1) - float(i0)) / tck / (float(w1) - float(w0)) * 100
wall = float(t1) - float(t0)
cpu_s = (float(c1) - float(c0)) / tck
cpu = cpu_s / wall * 100
mib = lambda k: f"{int(k) / 1024:.1f}"
try:
    u, s, e = open(timefile).read().split()[-3:]
    client = f"{float(u) + float(s):.2f} s CPU over {float(e):.1f} s ({(float(u) + float(s)) / float(e) * 100:.0f} % of one core)"
except (OSError, ValueError):
    client = "n/a"
try:
    doc = json.load(open(path))
except (OSError, ValueError) as ex:
    print(f"| {n} | ? | {cpu:.1f} | {cpu - idle:+.1f} | {mib(r0)} → {mib(r1)} (peak {mib(hwm)}) | – | – | no JSON from whep-load ({ex.__class__.__name__}) |")
    print(f"server CPU {cpu_s:.2f} s over {wall:.1f} s; idle {idle:.1f} %; load client {client}")
    sys.exit(0)
t = doc["totals"]
v = doc["viewers"]
lat = t["capture_to_received_ms"]
fmt = lambda x: "–" if x is None else f"{x:.0f}"
fmt1 = lambda x: "–" if x is None else f"{x:.1f}"
print(f"| {n} | {t['connected']}/{n} | {cpu:.1f} | {cpu - idle:+.1f} | {mib(r0)} → {mib(r1)} (peak {mib(hwm)}) | "
      f"{t['frames_min']} / {t['frames_median']} | {fmt1(t['fps_min'])} / {fmt1(t['fps_median'])} | "
      f"{fmt(t['kbps_min'])} / {fmt(t['kbps_median'])} |")
first = sorted(x["first_frame_ms"] for x in v if x["first_frame_ms"] is not None)
ages = [x.get("first_frame_age_ms") for x in v if x.get("first_frame_age_ms") is not None]
stale = [a for a in ages if a > 100]
conn = sorted(x["connected_ms"] for x in v if x["connected_ms"] is not None)
errors = sorted({x["error"] for x in v if x["error"]})
print(f"server: {cpu_s:.2f} s CPU over {wall:.1f} s = {cpu:.1f} % of one core (idle before: {idle:.1f} %); "
      f"RSS {mib(r0)} MiB before, {mib(r1)} MiB after, peak {mib(hwm)} MiB")
print(f"load client: {client}")
print(f"viewers: {t['connected']}/{n} connected, {t['with_frames']} with frames, {t['deleted']} DELETEd; "
      f"frames not contiguous (after a gap): {t['not_contiguous']}; "
      f"ICE+DTLS connected after {fmt(conn[0] if conn else None)}–{fmt(conn[-1] if conn else None)} ms, "
      f"first frame after {fmt(first[0] if first else None)}–{fmt(first[-1] if first else None)} ms "
      f"(from each viewer's start)")
if ages:
    print(f"first frame's age (capture → received): {len(stale)} of {len(ages)} viewers started with a picture "
          f"older than 100 ms" + (f" (up to {max(stale):.0f} ms: the server's cached keyframe and the frames after it, sent at once)" if stale else ""))
print(f"capture → received by the load client (SEI stamp), all viewers: n={lat['n']} p50 {fmt1(lat['p50'])} "
      f"p95 {fmt1(lat['p95'])} p99 {fmt1(lat['p99'])} max {fmt1(lat['max'])} ms")
if errors:
    print(f"errors: {'; '.join(errors)[:300]}")
EOF
)
    row=$(echo "$out" | head -1)
    rows+=("$row")
    echo "$out" | tail -n +2 | sed 's/^/- /'
    echo
done

echo "## summary: ${SOURCE} source, ${BITRATE} kbit/s asked, ${DURATION} s per viewer"
echo
echo "| viewers | connected | server CPU % | net of idle | server RSS MiB (before → after, peak) | frames/viewer (min / median) | fps/viewer (min / median) | received kbit/s per viewer (min / median) |"
echo "|---:|---:|---:|---:|---|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
echo
echo "CPU % is of one core over the whole whep-load run (set-up, ${DURATION} s of media, DELETEs);"
echo "\"net of idle\" subtracts the server's CPU % with the stream running and no viewer (${IDLE_SECS} s, just before)."
if [ "$SOURCE" = pattern ]; then
    echo "The test-pattern encoder runs inside the server, so it is in the server's figures."
fi
