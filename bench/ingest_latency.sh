#!/usr/bin/env bash
# bench/ingest_latency.sh: capture→received and capture→decoded per ingest protocol (issue 14),
# same source, same run, and what an edge pulling from an origin adds.
#
# One `livefeed publish` (test pattern, RESOLUTION, BITRATE, over TCP) pushes to an origin
# (`livefeed serve`); an edge (`livefeed serve --source cam=rtsp://ORIGIN/cam --rtsp-transport
# tcp`) pulls that path. And three ffmpeg relays read the origin's stream (`-c copy`, which
# keeps the SEI capture stamps) and push it to a third server, over RTSP (path `via-rtsp`), RTMP
# (`via-rtmp`) and SRT (`via-srt`, MPEG-TS, SRT latency SRT_LATENCY_MS): same source, same relay
# tool, only the ingest protocol differs. The publisher also sends the same frames over WHIP
# (`--also-url http://RELAY/via-whip/whip`, livefeed's own WHIP client: ffmpeg and GStreamer
# here have none), compared with its RTSP push to the origin. Six `livefeed receive --json` run
# at the same time for DURATION seconds (origin, edge, via-rtsp, via-rtmp, via-srt, via-whip);
# all read livefeed's capture stamps, so all measure from the same capture clock. Repeats RUNS
# times; prints one table per run, the edge's added latency (edge minus origin, per
# percentile), RTMP's and SRT's against RTSP through the same relay and WHIP's against the
# RTSP push, with their medians over the runs.
#
# Builds nothing: expects target/release/livefeed (cargo build --release).
# Environment: DURATION (20), RUNS (3), RESOLUTION (640x480), BITRATE (2000),
#              SRT_LATENCY_MS (20: SRT's receive buffer, the least the listener allows),
#              OUT_DIR (a new /tmp/livefeed-bench.* dir).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-20}
RUNS=${RUNS:-3}
RESOLUTION=${RESOLUTION:-640x480}
BITRATE=${BITRATE:-2000}
SRT_LATENCY_MS=${SRT_LATENCY_MS:-20}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"

require_bin
require_tool python3 "formatting the tables"
require_tool ffmpeg "the RTSP and RTMP relays"
if ! "$BIN" publish --help 2>/dev/null | grep -q -- --also-url; then
    echo "error: $BIN has no 'publish --also-url' (the WHIP row): build 4d2520a or later" >&2
    exit 1
fi

echo "# livefeed ingest latency benchmark (bench/ingest_latency.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- binary: $BIN ($(stat -c '%y' "$BIN" | cut -d. -f1))"
echo "- checkout at run time: $(checkout_desc)"
echo "- machine: $(machine_desc)"
echo "- source: livefeed publish, $RESOLUTION, 30 fps, $BITRATE kbit/s, TCP; ${DURATION} s per run, $RUNS runs"
echo "- logs and raw JSON: $OUT_DIR"
echo

for run in $(seq "$RUNS"); do
    start_server "$OUT_DIR/origin-$run" --data-dir "$OUT_DIR/origin-data-$run"
    ORIGIN_PORT=$SERVER_PORT
    start_server "$OUT_DIR/relay-$run" --data-dir "$OUT_DIR/relay-data-$run"
    RELAY_PORT=$SERVER_PORT
    server_http_port "$OUT_DIR/relay-$run"
    RELAY_HTTP=$SERVER_HTTP_PORT
    "$BIN" publish --url "rtsp://127.0.0.1:$ORIGIN_PORT/cam" --transport tcp \
        --also-url "http://127.0.0.1:$RELAY_HTTP/via-whip/whip" \
        --resolution "$RESOLUTION" --bitrate "$BITRATE" --duration $((DURATION + 15)) \
        >"$OUT_DIR/publish-$run.out" 2>"$OUT_DIR/publish-$run.err" &
    BG_PIDS+=($!)
    start_server "$OUT_DIR/edge-$run" --data-dir "$OUT_DIR/edge-data-$run" \
        --source "cam=rtsp://127.0.0.1:$ORIGIN_PORT/cam" --rtsp-transport tcp
    EDGE_PORT=$SERVER_PORT
    RELAY_RTMP=
    RELAY_SRT=
    for i in $(seq 100); do
        RELAY_RTMP=$(sed -n 's/^livefeed serving RTMP on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$OUT_DIR/relay-$run.out" | head -1)
        RELAY_SRT=$(sed -n 's/^livefeed serving SRT on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' "$OUT_DIR/relay-$run.out" | head -1)
        [ -n "$RELAY_RTMP" ] && [ -n "$RELAY_SRT" ] && break
        sleep 0.1
    done
    sleep 2 # the publisher connects, the first keyframe passes
    for proto in rtsp rtmp srt; do
        case $proto in
            rtsp) out=(-f rtsp -rtsp_transport tcp "rtsp://127.0.0.1:$RELAY_PORT/via-rtsp") ;;
            rtmp) out=(-f flv "rtmp://127.0.0.1:$RELAY_RTMP/via-rtmp") ;;
            srt) out=(-f mpegts -muxdelay 0 -muxpreload 0 "srt://127.0.0.1:$RELAY_SRT?streamid=publish:via-srt&latency=$((SRT_LATENCY_MS * 1000))&pkt_size=1316") ;;
        esac
        ffmpeg -hide_banner -loglevel error -fflags nobuffer -flags low_delay -rtsp_transport tcp \
            -i "rtsp://127.0.0.1:$ORIGIN_PORT/cam" -c copy -t $((DURATION + 10)) "${out[@]}" \
            >"$OUT_DIR/ffmpeg-$proto-$run.out" 2>"$OUT_DIR/ffmpeg-$proto-$run.err" &
        BG_PIDS+=($!)
    done
    sleep 4 # the edge pulls and the relays push; the first keyframes pass
    echo "## run $run"
    echo
    echo "Load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo
    "$BIN" receive --url "rtsp://127.0.0.1:$ORIGIN_PORT/cam" --duration "$DURATION" --json \
        >"$OUT_DIR/push-$run.jsonl" 2>"$OUT_DIR/push-$run.err" &
    push_pid=$!
    "$BIN" receive --url "rtsp://127.0.0.1:$EDGE_PORT/cam" --duration "$DURATION" --json \
        >"$OUT_DIR/pull-$run.jsonl" 2>"$OUT_DIR/pull-$run.err" &
    pull_pid=$!
    "$BIN" receive --url "rtsp://127.0.0.1:$RELAY_PORT/via-rtsp" --duration "$DURATION" --json \
        >"$OUT_DIR/relay_rtsp-$run.jsonl" 2>"$OUT_DIR/relay_rtsp-$run.err" &
    relay_rtsp_pid=$!
    "$BIN" receive --url "rtsp://127.0.0.1:$RELAY_PORT/via-rtmp" --duration "$DURATION" --json \
        >"$OUT_DIR/relay_rtmp-$run.jsonl" 2>"$OUT_DIR/relay_rtmp-$run.err" &
    relay_rtmp_pid=$!
    "$BIN" receive --url "rtsp://127.0.0.1:$RELAY_PORT/via-srt" --duration "$DURATION" --json \
        >"$OUT_DIR/relay_srt-$run.jsonl" 2>"$OUT_DIR/relay_srt-$run.err" &
    relay_srt_pid=$!
    "$BIN" receive --url "rtsp://127.0.0.1:$RELAY_PORT/via-whip" --duration "$DURATION" --json \
        >"$OUT_DIR/whip-$run.jsonl" 2>"$OUT_DIR/whip-$run.err" &
    whip_pid=$!
    wait "$push_pid" || echo "(the origin's receiver failed: see $OUT_DIR/push-$run.err)"
    wait "$pull_pid" || echo "(the edge's receiver failed: see $OUT_DIR/pull-$run.err)"
    wait "$relay_rtsp_pid" || echo "(the via-rtsp receiver failed: see $OUT_DIR/relay_rtsp-$run.err)"
    wait "$relay_rtmp_pid" || echo "(the via-rtmp receiver failed: see $OUT_DIR/relay_rtmp-$run.err)"
    wait "$relay_srt_pid" || echo "(the via-srt receiver failed: see $OUT_DIR/relay_srt-$run.err)"
    wait "$whip_pid" || echo "(the via-whip receiver failed: see $OUT_DIR/whip-$run.err)"
    bench_cleanup
    python3 - "$OUT_DIR" "$run" <<'PY'
import json, sys
out, run = sys.argv[1], sys.argv[2]
def summary(name):
    with open(f"{out}/{name}-{run}.jsonl") as f:
        rows = [json.loads(l) for l in f if l.strip().startswith("{")]
    return next(r for r in reversed(rows) if r.get("summary"))
rows = {
    "RTSP push (origin)": summary("push"),
    "RTSP pull (edge)": summary("pull"),
    "RTSP push via ffmpeg -c copy": summary("relay_rtsp"),
    "RTMP push via ffmpeg -c copy": summary("relay_rtmp"),
    "SRT push via ffmpeg -c copy": summary("relay_srt"),
    "WHIP push (the same publisher, --also-url)": summary("whip"),
}
print("| ingest | frames decoded | mismatches | capture→received p50 / p95 / p99 ms | capture→decoded p50 / p95 / p99 ms |")
print("|---|---:|---:|---|---|")
for name, s in rows.items():
    st = s["stages"]
    f = lambda k: " / ".join(f"{st[k][p]:.2f}" for p in ("p50", "p95", "p99"))
    print(f"| {name} | {s['frames_decoded']} | {s['mismatches']} | {f('capture_to_received')} | {f('capture_to_decoded')} |")
o, e = rows["RTSP push (origin)"]["stages"], rows["RTSP pull (edge)"]["stages"]
added = {p: e["capture_to_received"][p] - o["capture_to_received"][p] for p in ("p50", "p99")}
r, m = rows["RTSP push via ffmpeg -c copy"]["stages"], rows["RTMP push via ffmpeg -c copy"]["stages"]
rtmp = {p: m["capture_to_received"][p] - r["capture_to_received"][p] for p in ("p50", "p99")}
print()
print(f"Edge hop added (capture→received, edge − origin): p50 {added['p50']:+.2f} ms, p99 {added['p99']:+.2f} ms")
print(f"RTMP against RTSP ingest through the same relay (capture→received): p50 {rtmp['p50']:+.2f} ms, p99 {rtmp['p99']:+.2f} ms")
t = rows["SRT push via ffmpeg -c copy"]["stages"]
srt = {p: t["capture_to_received"][p] - r["capture_to_received"][p] for p in ("p50", "p99")}
print(f"SRT against RTSP ingest through the same relay (capture→received): p50 {srt['p50']:+.2f} ms, p99 {srt['p99']:+.2f} ms")
w = rows["WHIP push (the same publisher, --also-url)"]["stages"]
whip = {p: w["capture_to_received"][p] - o["capture_to_received"][p] for p in ("p50", "p99")}
print(f"WHIP against RTSP push from the same publisher (capture→received): p50 {whip['p50']:+.2f} ms, p99 {whip['p99']:+.2f} ms")
with open(f"{out}/added.jsonl", "a") as f:
    f.write(json.dumps({**added, "rtmp_p50": rtmp["p50"], "rtmp_p99": rtmp["p99"], "srt_p50": srt["p50"], "srt_p99": srt["p99"], "whip_p50": whip["p50"], "whip_p99": whip["p99"]}) + "\n")
PY
    echo
done

python3 - "$OUT_DIR" <<'PY'
import json, statistics, sys
with open(f"{sys.argv[1]}/added.jsonl") as f:
    runs = [json.loads(l) for l in f]
p50 = statistics.median(r["p50"] for r in runs)
p99 = statistics.median(r["p99"] for r in runs)
print(f"## origin → edge added latency over {len(runs)} runs (median of the runs)")
print()
print(f"capture→received p50 {p50:+.2f} ms, p99 {p99:+.2f} ms")
print()
print(f"RTMP against RTSP ingest (same relay), median of the runs: p50 {statistics.median(r['rtmp_p50'] for r in runs):+.2f} ms, p99 {statistics.median(r['rtmp_p99'] for r in runs):+.2f} ms")
print()
print(f"SRT against RTSP ingest (same relay), median of the runs: p50 {statistics.median(r['srt_p50'] for r in runs):+.2f} ms, p99 {statistics.median(r['srt_p99'] for r in runs):+.2f} ms")
print()
print(f"WHIP against RTSP push (same publisher), median of the runs: p50 {statistics.median(r['whip_p50'] for r in runs):+.2f} ms, p99 {statistics.median(r['whip_p99'] for r in runs):+.2f} ms")
PY
