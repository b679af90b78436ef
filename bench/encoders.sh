#!/usr/bin/env bash
# bench/encoders.sh: OpenH264 against libx264 (issue 7), and three paths served at once.
#
# 1. Encoders: `cargo run --release -p livefeed-source --features x264 --example encoder_bench`
#    on the same 90 pictures per case — the test pattern, ffmpeg's testsrc2 and ffmpeg's
#    mandelbrot (fine detail, hard to compress), at 640x480 / 2000 kbit/s and 1280x720 /
#    4000 kbit/s — with the same settings for both (bitrate, GOP 30, 30 fps, constrained
#    baseline, zero latency: OpenH264 real-time camera mode; x264 ultrafast + zerolatency,
#    ABR with a one-frame VBV): encode time per frame (p50/p95), the bitrate each produced,
#    and luma PSNR of the decoded picture against the source (quality per bit).
# 2. Three paths: the demo with `--paths 3` (three test-pattern publishers, server, three
#    receivers in one process) for DEMO_SECS, per encoder: process CPU (/usr/bin/time) and
#    each path's capture→decoded p50/p95.
# Needs libx264-dev, ffmpeg, python3; builds the example and `livefeed --features x264` itself
# (release, into target/).
# Environment: FRAMES (90), DEMO_SECS (30), OUT_DIR.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

FRAMES=${FRAMES:-90}
DEMO_SECS=${DEMO_SECS:-30}
OUT_DIR=${OUT_DIR:-$(mktemp -d /tmp/livefeed-bench.XXXXXX)}
mkdir -p "$OUT_DIR"
require_tool ffmpeg "the y4m sources"
require_tool python3 "the tables"
if [ ! -x /usr/bin/time ]; then echo "error: /usr/bin/time not found" >&2; exit 2; fi

echo "# OpenH264 against libx264, and three paths at once (bench/encoders.sh)"
echo
echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "- checkout: $(checkout_desc)"
echo "- machine: $(machine_desc); libx264 $(pkg-config --modversion x264 2>/dev/null || echo '?')"
echo "- raw output: $OUT_DIR"
echo

(cd "$ROOT" && cargo build --release --quiet -p livefeed-source --features x264 --example encoder_bench \
    && cargo build --release --quiet --features x264) >"$OUT_DIR/build.log" 2>&1 \
    || { echo "error: build failed, see $OUT_DIR/build.log" >&2; exit 2; }
EXAMPLE=$ROOT/target/release/examples/encoder_bench
BIN=$ROOT/target/release/livefeed

echo "## Encoders on the same pictures"
echo
echo "\`target/release/examples/encoder_bench SOURCE W H KBPS $FRAMES\` for each row; sources made with \`ffmpeg -f lavfi -i testsrc2|mandelbrot=size=WxH:rate=30 -frames:v $FRAMES -pix_fmt yuv420p -f yuv4mpegpipe\`."
echo
: >"$OUT_DIR/encoders.jsonl"
for case in "640 480 2000" "1280 720 4000"; do
    set -- $case
    w=$1 h=$2 kbps=$3
    for src in testsrc2 mandelbrot; do
        ffmpeg -v error -f lavfi -i "$src=size=${w}x${h}:rate=30" -frames:v "$FRAMES" \
            -pix_fmt yuv420p -f yuv4mpegpipe -y "$OUT_DIR/$src-$w.y4m"
    done
    for src in pattern "$OUT_DIR/testsrc2-$w.y4m" "$OUT_DIR/mandelbrot-$w.y4m"; do
        "$EXAMPLE" "$src" "$w" "$h" "$kbps" "$FRAMES" 2>/dev/null >>"$OUT_DIR/encoders.jsonl"
    done
done
python3 - "$OUT_DIR/encoders.jsonl" <<'PY'
import json, os, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| picture | source | encoder | encode p50 ms | p95 | kbit/s (asked) | luma PSNR dB |")
print("|---|---|---|---:|---:|---:|---:|")
for r in rows:
    src = os.path.basename(r["source"]).split("-")[0].replace(".y4m", "")
    e = r["encode_ms"]
    print(f"| {r['width']}x{r['height']} | {src} | {r['encoder']} | {e['p50']:.2f} | {e['p95']:.2f} | {r['kbps']:.0f} ({r['target_kbps']}) | {r['psnr_y_db']:.2f} |")
PY
echo

echo "## Three paths at once (demo --paths 3, ${DEMO_SECS} s, 640x480 @ 30 fps, 2000 kbit/s)"
echo
for enc in openh264 x264; do
    /usr/bin/time -o "$OUT_DIR/demo-$enc.time" -f '%U %S %e %M' \
        "$BIN" --paths 3 --encoder "$enc" --duration "$DEMO_SECS" --json \
        --rtsp-address 127.0.0.1:0 --http-address 127.0.0.1:0 --webrtc-address 127.0.0.1:0 \
        --data-dir "$OUT_DIR/data-$enc" >"$OUT_DIR/demo-$enc.jsonl" 2>"$OUT_DIR/demo-$enc.err" || true
done
python3 - "$OUT_DIR" <<'PY'
import json, os, sys
out = sys.argv[1]
print("| encoder | path | frames decoded | capture→decoded p50 ms | p95 | server-added p50 ms | process CPU (% of one core) | peak RSS MiB |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for enc in ["openh264", "x264"]:
    u, s, e, m = open(os.path.join(out, f"demo-{enc}.time")).read().split()[-4:]
    cpu = (float(u) + float(s)) / float(e) * 100
    for line in open(os.path.join(out, f"demo-{enc}.jsonl")):
        d = json.loads(line)
        if d.get("summary") is not True:
            continue
        st = d["stages"]
        dec, srv = st.get("capture_to_decoded", {}), st.get("server_ingest_to_egress", {})
        print(f"| {enc} | {d['path']} | {d['frames_decoded']} | {dec.get('p50', float('nan')):.2f} | {dec.get('p95', float('nan')):.2f} | {srv.get('p50', float('nan')):.3f} | {cpu:.0f} (all three) | {int(m) / 1024:.0f} |")
PY
